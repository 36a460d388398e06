"""Action tokens: signed, typed, expiring, one nonce each, and rotatable keys."""

from __future__ import annotations

import time

import jwt
import pytest

from app.errors import InvalidToken, TokenExpired
from app.tokens import ACTION_TOKEN_TYPE, ActionTokens, key_id, token_hash

KEY = b"action-key-0123456789abcdef0123456789"


def _issue(tokens: ActionTokens) -> str:
    token, _ = tokens.issue(user_id="u", action_type="COMPLETE_QUEST", action_id="q", score_increment=100)
    return token


def test_round_trip_and_claims() -> None:
    tokens = ActionTokens(KEY, ttl_seconds=120)
    token, claims = tokens.issue(user_id="u", action_type="COMPLETE_QUEST", action_id="q", score_increment=100)
    assert tokens.verify(token) == claims
    assert claims.exp - claims.iat == 120
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "HS256", "typ": ACTION_TOKEN_TYPE, "kid": key_id(KEY)}
    payload = jwt.decode(token, KEY, algorithms=["HS256"])
    assert set(payload) == {"userId", "actionType", "actionId", "scoreIncrement", "nonce", "iat", "exp"}


def test_nonces_are_unique() -> None:
    tokens = ActionTokens(KEY)
    nonces = {tokens.issue(user_id="u", action_type="A", action_id="q", score_increment=1)[1].nonce for _ in range(200)}
    assert len(nonces) == 200


def test_expired() -> None:
    tokens = ActionTokens(KEY, ttl_seconds=1)
    claims = {"userId": "u", "actionType": "A", "actionId": "q", "scoreIncrement": 1, "nonce": "n"}
    expired = jwt.encode(
        {**claims, "iat": int(time.time()) - 10, "exp": int(time.time()) - 5},
        KEY,
        headers={"kid": key_id(KEY), "typ": ACTION_TOKEN_TYPE},
    )
    with pytest.raises(TokenExpired):
        tokens.verify(expired)


def test_rotation_previous_key_verifies_until_removed() -> None:
    old = ActionTokens(b"old-key-" * 5)
    token = _issue(old)
    rotated = ActionTokens(KEY, previous=(b"old-key-" * 5,))
    assert rotated.verify(token).user_id == "u"
    assert jwt.get_unverified_header(_issue(rotated))["kid"] == key_id(KEY)
    with pytest.raises(InvalidToken):
        ActionTokens(KEY).verify(token)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # signature
        lambda t: t.split(".")[0] + ".eyJ1c2VySWQiOiJ4In0." + t.split(".")[2],  # payload swapped
        lambda t: "x" + t,
        lambda t: "",
        lambda t: "a.b",
    ],
)
def test_tampered(mutate: object) -> None:
    tokens = ActionTokens(KEY)
    with pytest.raises(InvalidToken):
        tokens.verify(mutate(_issue(tokens)))  # type: ignore[operator]


def test_wrong_type_or_missing_claims() -> None:
    tokens = ActionTokens(KEY)
    user_jwt = jwt.encode({"sub": "u", "exp": int(time.time()) + 60}, KEY, headers={"kid": key_id(KEY)})
    with pytest.raises(InvalidToken):
        tokens.verify(user_jwt)
    no_claims = jwt.encode(
        {"exp": int(time.time()) + 60, "iat": int(time.time())},
        KEY,
        headers={"kid": key_id(KEY), "typ": ACTION_TOKEN_TYPE},
    )
    with pytest.raises(InvalidToken):
        tokens.verify(no_claims)


def test_token_hash_is_sha256_hex() -> None:
    assert len(token_hash("abc")) == 64 and token_hash("abc") != token_hash("abd")
