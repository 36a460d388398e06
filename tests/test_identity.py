"""The identity provider's keys (app/identity.py) against a real local JWKS server: what a JWKS
may hold, rotation, the unknown-`kid` cooldown, outages and recovery."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from app.identity import MAX_DOCUMENT_BYTES, KeySetError, ProviderKeys, parse_key_set

from .identity_provider import Clock, IdentityProvider, b64, new_key, public_jwk

COOLDOWN = 30.0


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def keys(idp: IdentityProvider, clock: Clock) -> AsyncIterator[ProviderKeys]:
    held = ProviderKeys(idp.url, cooldown_seconds=COOLDOWN, clock=clock)
    yield held
    await held.close()


async def test_every_kind_of_key_is_fetched_with_its_one_algorithm(idp: IdentityProvider, keys: ProviderKeys) -> None:
    assert await keys.refresh()
    assert keys.kids == set(idp.keys)
    for kid, (alg, _) in idp.keys.items():
        key = keys.get(kid)
        assert key is not None and key.algorithm_name == alg
    assert idp.fetches == 1


def _jwk(kind: str = "RS256", kid: str | None = "k", **members: Any) -> dict[str, Any]:
    """A public JWK of a new key of `kind` (an algorithm's name), `members` over it (None: left out)."""
    jwk = public_jwk(new_key(kind), kind, kid or "")
    jwk["kid"] = kid
    jwk.update(members)
    return {name: value for name, value in jwk.items() if value is not None}


def _rsa_1024() -> dict[str, Any]:
    jwk = public_jwk(rsa.generate_private_key(public_exponent=65537, key_size=1024), "RS256", "k")
    return jwk


def _p384() -> dict[str, Any]:
    jwk = public_jwk(ec.generate_private_key(ec.SECP384R1()), "ES256", "k")
    del jwk["alg"]
    return jwk


def _with_private_part() -> dict[str, Any]:
    return {**_jwk(), "d": b64(b"private exponent")}


# (what the JWKS member is, the algorithm it verifies or None when it is left out)
MEMBERS: dict[str, tuple[Callable[[], Any], str | None]] = {
    "RS256": (lambda: _jwk("RS256"), "RS256"),
    "RSA without alg": (lambda: _jwk("RS256", alg=None), "RS256"),
    "ES256": (lambda: _jwk("ES256"), "ES256"),
    "EC P-256 without alg": (lambda: _jwk("ES256", alg=None), "ES256"),
    "EdDSA": (lambda: _jwk("EdDSA"), "EdDSA"),
    "Ed25519 without alg or use": (lambda: _jwk("EdDSA", alg=None, use=None), "EdDSA"),
    "key_ops verify": (lambda: _jwk(key_ops=["verify"]), "RS256"),
    "RSA key labelled HS256": (lambda: _jwk("RS256", alg="HS256"), None),
    "RSA key labelled RS512": (lambda: _jwk("RS256", alg="RS512"), None),
    "EC key labelled RS256": (lambda: _jwk("ES256", alg="RS256"), None),
    "Ed25519 key labelled ES256": (lambda: _jwk("EdDSA", alg="ES256"), None),
    "RSA under 2048 bits": (_rsa_1024, None),
    "EC P-384": (_p384, None),
    "symmetric key": (lambda: {"kty": "oct", "kid": "k", "k": b64(b"s" * 32), "alg": "HS256"}, None),
    "RSA key labelled none": (lambda: _jwk(alg="none"), None),
    "encryption key": (lambda: _jwk(use="enc"), None),
    "key_ops without verify": (lambda: _jwk(key_ops=["encrypt"]), None),
    "private key published": (_with_private_part, None),
    "no kid": (lambda: _jwk(kid=None), None),
    "empty kid": (lambda: _jwk(kid=""), None),
    "kid a number": (lambda: {**_jwk(), "kid": 5}, None),
    "no kty": (lambda: {k: v for k, v in _jwk().items() if k != "kty"}, None),
    "kty unknown": (lambda: _jwk(kty="XYZ"), None),
    "modulus not base64url": (lambda: _jwk(n="!!!not base64!!!"), None),
    "not an object": (lambda: "RS256", None),
    "null": (lambda: None, None),
}


@pytest.mark.parametrize(("member", "algorithm"), MEMBERS.values(), ids=MEMBERS.keys())
def test_what_a_jwks_member_verifies(member: Callable[[], Any], algorithm: str | None) -> None:
    good = _jwk("EdDSA", kid="other")
    keys = parse_key_set(json.dumps({"keys": [member(), good]}).encode(), ("RS256", "ES256", "EdDSA"))
    if algorithm is None:
        assert set(keys) == {"other"}
    else:
        assert keys["k"][0].algorithm_name == algorithm


def test_only_the_configured_algorithms_are_kept() -> None:
    document = json.dumps({"keys": [_jwk("RS256", kid="r"), _jwk("ES256", kid="e")]}).encode()
    assert set(parse_key_set(document, ("ES256",))) == {"e"}


def test_the_first_of_two_keys_with_one_kid_is_kept() -> None:
    first, second = _jwk("RS256"), _jwk("ES256")
    keys = parse_key_set(json.dumps({"keys": [first, second]}).encode(), ("RS256", "ES256"))
    assert keys["k"][0].algorithm_name == "RS256"


@pytest.mark.parametrize(
    "document",
    [
        b"",
        b"not json",
        b"[]",
        b'{"keys": "x"}',
        b'{"keys": []}',
        b'{"keys": [{"kty": "oct", "kid": "k", "k": "c2VjcmV0"}]}',
        b'{"keys": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b"\xff\xfe",
    ],
    ids=["empty", "not JSON", "array", "keys not a list", "no keys", "no usable key", "nested", "not UTF-8"],
)
def test_not_a_usable_jwks(document: bytes) -> None:
    with pytest.raises(KeySetError):
        parse_key_set(document, ("RS256", "ES256", "EdDSA"))


async def test_rotation_at_the_provider(idp: IdentityProvider, keys: ProviderKeys, clock: Clock) -> None:
    assert await keys.refresh()
    old = next(iter(idp.keys))
    generation = keys.generation
    new = idp.rotate(old)
    assert keys.get(new) is None and keys.get(old) is not None  # nothing fetched yet
    clock.now += COOLDOWN
    assert await keys.refresh_for(new) is not None  # an unknown kid fetches the set
    assert keys.get(old) is None  # the retired key went with that fetch
    assert keys.generation == generation + 1  # what it verified is verified again
    assert idp.fetches == 2


async def test_a_key_added_or_a_set_unchanged_keeps_the_generation(
    idp: IdentityProvider, keys: ProviderKeys, clock: Clock
) -> None:
    assert await keys.refresh()
    generation = keys.generation
    assert await keys.refresh()
    added = idp.add_key("ES256")
    assert await keys.refresh()
    assert keys.get(added) is not None and keys.generation == generation


async def test_a_flood_of_unknown_kids_makes_one_fetch_per_cooldown(
    idp: IdentityProvider, keys: ProviderKeys, clock: Clock
) -> None:
    assert await keys.refresh()
    clock.now += COOLDOWN
    found = await asyncio.gather(*(keys.refresh_for(f"made-up-{i}") for i in range(500)))
    assert found == [None] * 500
    assert idp.fetches == 2  # the flood shared one fetch
    await asyncio.gather(*(keys.refresh_for(f"again-{i}") for i in range(500)))
    clock.now += COOLDOWN - 1
    await asyncio.gather(*(keys.refresh_for(f"later-{i}") for i in range(500)))
    assert idp.fetches == 2  # within the cooldown: none at all
    clock.now += 1
    await asyncio.gather(*(keys.refresh_for(f"after-{i}") for i in range(500)))
    assert idp.fetches == 3


async def test_a_waiter_that_gives_up_does_not_stop_the_fetch(idp: IdentityProvider, keys: ProviderKeys) -> None:
    impatient = asyncio.ensure_future(keys.refresh())
    await asyncio.sleep(0)  # the fetch has started
    impatient.cancel()
    assert await keys.refresh()  # joins the same fetch, which went on
    assert idp.fetches == 1 and keys.kids == set(idp.keys)


async def test_provider_down_keeps_the_keys_and_recovers(
    idp: IdentityProvider, keys: ProviderKeys, clock: Clock
) -> None:
    assert await keys.refresh()
    held = keys.kids
    generation = keys.generation
    idp.down = True  # 503
    clock.now += COOLDOWN
    assert not await keys.refresh()
    assert keys.kids == held and keys.generation == generation
    await idp.stop()  # connection refused
    new = idp.add_key("EdDSA")
    clock.now += COOLDOWN
    assert await keys.refresh_for(new) is None
    assert keys.kids == held and all(keys.get(kid) is not None for kid in held)
    await idp.start()
    idp.down = False
    assert await keys.refresh_for(new) is None  # back, but the failed fetch started the cooldown
    clock.now += COOLDOWN
    assert await keys.refresh_for(new) is not None
    assert keys.kids == held | {new}


def _redirect() -> web.StreamResponse:
    return web.HTTPFound(location="/attacker/jwks.json")


BAD_ANSWERS: dict[str, Callable[[], web.StreamResponse]] = {
    "503": lambda: web.Response(status=503),
    "404": lambda: web.Response(status=404),
    "redirect": _redirect,
    "HTML": lambda: web.Response(text="<html>sign in</html>", content_type="text/html"),
    "no keys": lambda: web.json_response({"keys": []}),
    "too large": lambda: web.json_response({"keys": [], "padding": "x" * MAX_DOCUMENT_BYTES}),
}


@pytest.mark.parametrize("answer", BAD_ANSWERS.values(), ids=BAD_ANSWERS.keys())
async def test_a_bad_answer_keeps_the_keys(
    idp: IdentityProvider, keys: ProviderKeys, clock: Clock, answer: Callable[[], web.StreamResponse]
) -> None:
    assert await keys.refresh()
    held = keys.kids
    idp.answer = answer
    clock.now += COOLDOWN
    assert not await keys.refresh()
    assert keys.kids == held
    assert idp.paths.get("/attacker/jwks.json", 0) == 0  # a redirect is not followed


async def test_run_refreshes_on_schedule_and_retries_after_a_failure(idp: IdentityProvider) -> None:
    keys = ProviderKeys(idp.url, refresh_seconds=0.01, cooldown_seconds=0.01)
    task = asyncio.ensure_future(keys.run())
    try:
        async with asyncio.timeout(30):  # a bound on a broken loop, not a measurement
            while idp.fetches < 3:
                await asyncio.sleep(0.01)
            assert keys.kids == set(idp.keys)
            idp.down = True
            seen = idp.fetches
            while idp.fetches < seen + 3:
                await asyncio.sleep(0.01)
            assert keys.kids == set(idp.keys)  # kept through the failures
            idp.down = False
            added = idp.add_key("ES256")
            while keys.get(added) is None:
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await keys.close()


async def test_no_fetch_after_close(idp: IdentityProvider, keys: ProviderKeys) -> None:
    await keys.close()
    assert not await keys.refresh()
    assert idp.fetches == 0
