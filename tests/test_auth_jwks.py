"""Users' JWTs from the identity provider: RS256, ES256 and EdDSA by its keys, each key pinned to
its algorithm, `iss` and `aud` checked, hostile tokens refused (never an error of the server)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest

from app.auth import UnknownKey, UserAuth
from app.errors import Unauthorized
from app.identity import ProviderKeys
from app.settings import AuthSettings

from .identity_provider import (
    AUDIENCE,
    CONFUSIONS,
    HOSTILE,
    ISSUER,
    Clock,
    IdentityProvider,
    forged_tokens,
    hostile_tokens,
)

SECRET = b"s" * 32


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def provider(idp: IdentityProvider, clock: Clock) -> AsyncIterator[ProviderKeys]:
    keys = ProviderKeys(idp.url, clock=clock)
    assert await keys.refresh()
    yield keys
    await keys.close()


def _auth(provider: ProviderKeys, secret: bytes | None = None, **options: Any) -> UserAuth:
    return UserAuth(secret, provider=provider, issuer=ISSUER, audience=AUDIENCE, **options)


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_each_algorithm_verifies_with_its_key(idp: IdentityProvider, provider: ProviderKeys, alg: str) -> None:
    principal = _auth(provider).verify(idp.sign(idp.kid(alg), "alice", name="Alice\u200b", roles=["admin"]))
    assert principal.user_id == "alice" and principal.name == "Alice" and principal.roles == {"admin"}


@pytest.mark.parametrize("case", CONFUSIONS)
@pytest.mark.parametrize("secret", [None, SECRET], ids=["provider only", "provider and HS256"])
async def test_algorithm_confusion_is_refused(
    idp: IdentityProvider, provider: ProviderKeys, case: str, secret: bytes | None
) -> None:
    token = forged_tokens(idp, SECRET)[case]
    auth = _auth(provider, secret)
    if case == "HS256 with the shared secret" and secret is not None:
        assert (await auth.authenticate(token)).user_id == "alice"  # HS256 configured: the shared secret's own
        return
    with pytest.raises(Unauthorized):
        await auth.authenticate(token)


def test_hs256_alone_still_verifies_without_a_provider() -> None:
    auth = UserAuth(SECRET)
    assert auth.verify(auth.issue("u")).user_id == "u"
    assert auth.accepts_hs256 and not UserAuth(None).accepts_hs256
    with pytest.raises(ValueError, match="identity provider"):
        UserAuth(None).issue("u")


def test_a_short_hs256_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        UserAuth(b"short")


ISS_AUD = {
    "wrong iss": {"iss": "https://evil.example"},
    "iss with a trailing slash": {"iss": ISSUER + "/"},
    "no iss": {"iss": None},
    "wrong aud": {"aud": "chat"},
    "aud list without us": {"aud": ["chat", "mail"]},
    "no aud": {"aud": None},
}


@pytest.mark.parametrize("claims", ISS_AUD.values(), ids=ISS_AUD.keys())
def test_wrong_issuer_or_audience_is_refused(
    idp: IdentityProvider, provider: ProviderKeys, claims: dict[str, Any]
) -> None:
    kid = idp.kid("ES256")
    full = {k: v for k, v in {**idp.claims(), **claims}.items() if v is not None}
    token = jwt.encode(full, idp.keys[kid][1], algorithm="ES256", headers={"kid": kid})
    with pytest.raises(Unauthorized):
        _auth(provider).verify(token)


def test_audience_in_a_list_is_accepted(idp: IdentityProvider, provider: ProviderKeys) -> None:
    assert _auth(provider).verify(idp.sign(idp.kid("EdDSA"), aud=["chat", AUDIENCE])).user_id == "alice"


@pytest.mark.parametrize("case", HOSTILE)
async def test_hostile_tokens_are_refused(idp: IdentityProvider, provider: ProviderKeys, case: str) -> None:
    token = hostile_tokens(idp)[case]
    before = dict(idp.paths)
    with pytest.raises(Unauthorized):
        await _auth(provider, SECRET).authenticate(token)
    assert idp.paths.get("/attacker", 0) == idp.paths.get("/x5u", 0) == 0  # a token never names where keys are
    assert sum(idp.paths.values()) - sum(before.values()) <= 1  # at most the one fetch of the cooldown


async def test_an_unknown_kid_is_fetched_once_then_verified(
    idp: IdentityProvider, provider: ProviderKeys, clock: Clock
) -> None:
    auth = _auth(provider)
    new = idp.add_key("EdDSA")
    token = idp.sign(new, "bob")
    with pytest.raises(UnknownKey):
        auth.verify(token)  # the synchronous path never fetches
    clock.now += provider.cooldown_seconds
    assert (await auth.authenticate(token)).user_id == "bob"
    assert idp.fetches == 2
    assert (await auth.authenticate(token)).user_id == "bob" and idp.fetches == 2  # remembered


async def test_a_retired_key_stops_verifying_even_remembered_tokens(
    idp: IdentityProvider, provider: ProviderKeys, clock: Clock
) -> None:
    auth = _auth(provider)
    old = idp.kid("RS256")
    token = idp.sign(old, "carol")
    assert auth.verify(token).user_id == "carol" and auth.remembers(token)
    other = idp.sign(idp.kid("ES256"), "dave")
    auth.verify(other)
    idp.rotate(old)
    assert await provider.refresh()
    with pytest.raises(Unauthorized):
        await auth.authenticate(token)
    assert auth.verify(other).user_id == "dave"  # verified again with its key, still held


def test_the_tables_name_every_token(idp: IdentityProvider) -> None:
    assert list(forged_tokens(idp, SECRET)) == list(CONFUSIONS)
    assert list(hostile_tokens(idp)) == list(HOSTILE)
    # Each reaches the parser: none is refused for its size alone.
    assert max(len(token) for token in hostile_tokens(idp).values()) <= AuthSettings().max_token_bytes
