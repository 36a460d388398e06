"""Users' bearer JWTs: only HS256 with the right key, `sub` and `exp` well formed."""

from __future__ import annotations

import base64
import hmac
import json
import time
from typing import Any

import jwt
import pytest

from app import auth as auth_module
from app.auth import UserAuth, clean_display_name
from app.errors import Unauthorized

from .conftest import JWT_SECRET

SECRET = b"k" * 32


def _raw(header: dict[str, object], payload: str, key: bytes = SECRET, digest: str = "sha256") -> str:
    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    signing = b64(json.dumps(header).encode()) + b"." + b64(payload.encode())
    return (signing + b"." + b64(hmac.new(key, signing, digest).digest())).decode()


def test_valid_token() -> None:
    auth = UserAuth(SECRET)
    principal = auth.verify(auth.issue("user-1", name="Alice"))
    assert principal.user_id == "user-1" and principal.name == "Alice" and principal.expires_at > time.time()


def test_preferred_username_and_fallback() -> None:
    auth = UserAuth(SECRET)
    token = jwt.encode({"sub": "u", "exp": int(time.time()) + 60, "preferred_username": "Bo"}, SECRET)
    assert auth.verify(token).name == "Bo"
    assert auth.verify(auth.issue("u")).name == "u"


def test_leeway_accepts_small_skew_only() -> None:
    auth = UserAuth(SECRET, leeway_seconds=10)
    assert auth.verify(jwt.encode({"sub": "u", "exp": int(time.time()) - 5}, SECRET)).user_id == "u"
    with pytest.raises(Unauthorized, match="expired"):
        auth.verify(jwt.encode({"sub": "u", "exp": int(time.time()) - 60}, SECRET))


# Far ahead: these tokens are made when the module is collected, and a suite runs for many minutes
# before using them (an `nbf` 9 minutes ahead was in the past by then).
EXP = int(time.time()) + 30 * 86_400
BAD_TOKENS = {
    "alg none": _raw({"alg": "none"}, json.dumps({"sub": "u", "exp": EXP})).rsplit(".", 1)[0] + ".",
    "HS512": _raw({"alg": "HS512"}, json.dumps({"sub": "u", "exp": EXP}), digest="sha512"),
    "wrong key": jwt.encode({"sub": "u", "exp": EXP}, b"other" * 8),
    "no exp": jwt.encode({"sub": "u"}, SECRET),
    "no sub": jwt.encode({"exp": EXP}, SECRET),
    "exp null": _raw({"alg": "HS256"}, '{"sub": "u", "exp": null}'),
    "exp 1e309": _raw({"alg": "HS256"}, '{"sub": "u", "exp": 1e309}'),
    "exp string": _raw({"alg": "HS256"}, '{"sub": "u", "exp": "soon"}'),
    "sub number": _raw({"alg": "HS256"}, f'{{"sub": 123, "exp": {EXP}}}'),
    "sub bad chars": jwt.encode({"sub": "a b<", "exp": EXP}, SECRET),
    "sub too long": jwt.encode({"sub": "a" * 101, "exp": EXP}, SECRET),
    "name not string": _raw({"alg": "HS256"}, f'{{"sub": "u", "exp": {EXP}, "name": 5}}'),
    "payload not object": _raw({"alg": "HS256"}, "[1, 2]"),
    "action token typ": jwt.encode({"sub": "u", "exp": EXP}, SECRET, headers={"typ": "sb-action+jwt"}),
    "nbf in the future": jwt.encode({"sub": "u", "exp": EXP, "nbf": EXP - 60}, SECRET),
    "iat in the future": jwt.encode({"sub": "u", "exp": EXP, "iat": EXP - 60}, SECRET),
    "iat infinite": _raw({"alg": "HS256"}, f'{{"sub": "u", "exp": {EXP}, "iat": 1e309}}'),
    "garbage": "a.b.c",
    "empty": "",
    "huge": "a" * 5000,
}


@pytest.mark.parametrize("token", BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
def test_rejected_tokens(token: str) -> None:
    with pytest.raises(Unauthorized):
        UserAuth(SECRET).verify(token)


@pytest.mark.parametrize("header", [None, "", "Bearer", "Token abc", "Basic dXNlcjpwYXNz"])
async def test_bad_headers(header: str | None) -> None:
    with pytest.raises(Unauthorized):
        await UserAuth(SECRET).from_header(header)


async def test_header_scheme_case_insensitive() -> None:
    auth = UserAuth(SECRET)
    assert (await auth.from_header("bearer " + auth.issue("u"))).user_id == "u"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Alice", "Alice"),
        ("  Al\u200bice\u202e  ", "Alice"),
        ("a\x00b\x1fc\x7f", "abc"),
        ("line\nbreak\ttab", "line break tab"),
        ("<script>alert(1)</script>", "<script>alert(1)</script>"),
        ("x" * 100, "x" * 64),
        ("\u200b\u200b", "fallback"),
        (None, "fallback"),
        ("日本語の名前", "日本語の名前"),
        ("\u3164\u3164", "fallback"),  # Hangul fillers: letters that render as nothing
        ("\u115f\u1160A\uffa0", "A"),
        ("A\u034fl\ufe0fi\U000e0100ce", "Alice"),  # grapheme joiner, variation selectors
        ("Hangul 한글", "Hangul 한글"),
        ("\u2764\ufe0f Alice 1\ufe0f\u20e3", "\u2764\ufe0f Alice 1\ufe0f\u20e3"),  # emoji keep their presentation
        ("\ufe0f\ufe0fA\ufe0f", "A"),  # but a selector after nothing it selects for goes
    ],
)
def test_clean_display_name(raw: str | None, expected: str) -> None:
    assert clean_display_name(raw, "fallback") == expected


# Unicode's Default_Ignorable_Code_Point property (DerivedCoreProperties.txt), whole: whatever the
# category of each, a name keeps none of them.
DEFAULT_IGNORABLE = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)


def test_no_default_ignorable_character_stays_in_a_name() -> None:
    kept = [
        hex(code)
        for first, last in DEFAULT_IGNORABLE
        for code in range(first, last + 1)
        if clean_display_name(f"a{chr(code)}b", "fallback") != "ab"
    ]
    assert kept == []


def test_verified_tokens_are_remembered_until_they_expire(monkeypatch: pytest.MonkeyPatch) -> None:
    auth = UserAuth(SECRET, leeway_seconds=0)
    token = jwt.encode({"sub": "u", "exp": int(time.time()) + 30, "name": "Ann"}, SECRET)
    assert auth.verify(token).name == "Ann"
    assert auth.verify(token) is auth.verify(token)  # the second look is the remembered answer
    later = time.time() + 31
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(Unauthorized, match="expired"):
        auth.verify(token)


def test_remembered_tokens_are_bounded() -> None:
    auth = UserAuth(SECRET)
    tokens = [auth.issue(f"u{i}") for i in range(auth_module.VERIFIED_CACHE_SIZE + 10)]
    for token in tokens:
        auth.verify(token)
    assert auth.verified_count == auth_module.VERIFIED_CACHE_SIZE
    assert not auth.remembers(tokens[0]) and auth.remembers(tokens[-1])


def _signed(**claims: object) -> str:
    return jwt.encode({"sub": "u", "exp": int(time.time()) + 600, **claims}, SECRET)


AUDIENCE_CASES = [
    # (configured issuer, configured audience, claims, accepted)
    (None, None, {}, True),
    (None, None, {"aud": "other-service"}, False),
    (None, None, {"aud": []}, False),
    (None, "scoreboard", {}, False),
    (None, "scoreboard", {"aud": "scoreboard"}, True),
    (None, "scoreboard", {"aud": ["chat", "scoreboard"]}, True),
    (None, "scoreboard", {"aud": ["chat"]}, False),
    (None, "scoreboard", {"aud": "scoreboard2"}, False),
    (None, "scoreboard", {"aud": "Scoreboard"}, False),
    (None, "scoreboard", {"aud": 5}, False),
    ("https://id.example", None, {"iss": "https://id.example"}, True),
    ("https://id.example", None, {}, False),
    ("https://id.example", None, {"iss": "https://id.example/"}, False),
    ("https://id.example", None, {"iss": "https://evil.example"}, False),
    (None, None, {"iss": "anyone"}, True),  # no issuer configured: not checked
]


@pytest.mark.parametrize(("issuer", "audience", "claims", "accepted"), AUDIENCE_CASES)
def test_issuer_and_audience(
    issuer: str | None, audience: str | None, claims: dict[str, object], accepted: bool
) -> None:
    auth = UserAuth(SECRET, issuer=issuer, audience=audience)
    token = _signed(**claims)
    if accepted:
        assert auth.verify(token).user_id == "u"
    else:
        with pytest.raises(Unauthorized):
            auth.verify(token)


def test_issued_tokens_carry_the_configured_issuer_and_audience() -> None:
    auth = UserAuth(SECRET, issuer="https://id.example", audience="scoreboard")
    token = auth.issue("u")
    assert jwt.decode(token, SECRET, algorithms=["HS256"], audience="scoreboard", issuer="https://id.example")
    assert auth.verify(token).user_id == "u"


def test_a_token_living_longer_than_allowed_is_refused() -> None:
    auth = UserAuth(SECRET, leeway_seconds=10, max_lifetime_seconds=3600)
    assert auth.verify(jwt.encode({"sub": "u", "exp": int(time.time()) + 3600}, SECRET)).user_id == "u"
    with pytest.raises(Unauthorized, match="too far"):
        auth.verify(jwt.encode({"sub": "u", "exp": int(time.time()) + 3700}, SECRET))
    with pytest.raises(Unauthorized, match="too far"):
        UserAuth(SECRET).verify(jwt.encode({"sub": "u", "exp": int(time.time()) + 30 * 86_400}, SECRET))


async def test_the_app_checks_the_configured_audience(make_client: Any, bearer: Any) -> None:
    client = await make_client(auth={"audience": "scoreboard", "issuer": "https://id.example"})
    resp = await client.get("/api/v1/users/u/score", headers=bearer("u"))  # no aud, no iss
    assert resp.status == 401
    good = UserAuth(JWT_SECRET, audience="scoreboard", issuer="https://id.example").issue("u")
    resp = await client.get("/api/v1/users/u/score", headers={"Authorization": f"Bearer {good}"})
    assert resp.status == 404  # authenticated; the user simply has no row yet


@pytest.mark.parametrize("padding", ["=", "=="])
def test_a_token_has_one_spelling(padding: str) -> None:
    auth = UserAuth(SECRET)
    token = auth.issue("u")
    assert auth.verify(token).user_id == "u"
    with pytest.raises(Unauthorized, match="invalid"):  # PyJWT alone takes a padded signature
        auth.verify(token + padding)
