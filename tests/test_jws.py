"""The HS256 compact JWS: interoperable with PyJWT both ways, and strict about everything else."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import jwt
import pytest

from app import jws

KEY = b"j" * 32


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forge(header: object, payload: bytes = b'{"sub":"u"}', key: bytes = KEY) -> str:
    signing = f"{_b64(json.dumps(header).encode())}.{_b64(payload)}"
    return f"{signing}.{_b64(hmac.new(key, signing.encode(), hashlib.sha256).digest())}"


def test_pyjwt_reads_ours_and_we_read_pyjwts() -> None:
    ours = jws.sign({"sub": "u", "n": 1}, KEY, typ="JWT", kid="k1")
    assert jwt.decode(ours, KEY, algorithms=["HS256"]) == {"sub": "u", "n": 1}
    assert jwt.get_unverified_header(ours) == {"alg": "HS256", "typ": "JWT", "kid": "k1"}
    theirs = jwt.encode({"sub": "v"}, KEY, algorithm="HS256", headers={"kid": "k2"})
    header, payload = jws.verify(theirs, lambda h: KEY)
    assert header.kid == "k2" and json.loads(payload) == {"sub": "v"}


def test_key_chosen_from_the_header() -> None:
    token = jws.sign({"a": 1}, b"second" * 6, kid="two")
    keys = {"one": KEY, "two": b"second" * 6}
    assert jws.verify(token, lambda h: keys.get(h.kid or ""))[1] == b'{"a":1}'
    with pytest.raises(jws.JwsError, match="no key"):
        jws.verify(token, lambda h: None)


GOOD = jws.sign({"sub": "u"}, KEY)
HEAD, BODY, SIG = GOOD.split(".")
BAD = {
    "wrong key": jws.sign({"sub": "u"}, b"x" * 32),
    "alg none": _forge({"alg": "none"}).rsplit(".", 1)[0] + ".",
    "alg HS512": _forge({"alg": "HS512"}),
    "alg hs256 lower case": _forge({"alg": "hs256"}),
    "no alg": _forge({"typ": "JWT"}),
    "crit": _forge({"alg": "HS256", "crit": ["exp"]}),
    "typ not a string": _forge({"alg": "HS256", "typ": 5}),
    "header not an object": _forge(["HS256"]),
    "two parts": f"{HEAD}.{BODY}",
    "four parts": f"{GOOD}.x",
    "padding": f"{HEAD}.{BODY}=.{SIG}",
    "standard alphabet": f"{HEAD}.{BODY}.{SIG.replace('-', '+').replace('_', '/')}",
    "whitespace": f"{HEAD}.{BODY}. {SIG}",
    "non-ascii": f"{HEAD}.{BODY}.{SIG}é",
    "non-ascii payload": f"{HEAD}.é.{SIG}",
    "non-ascii header": f"é.{BODY}.{SIG}",
    "non-ascii header of a known shape": "eyJhbGciOiJIUzI1NiJ9.é.x",
    "lone surrogate": f"{HEAD}.{BODY}\ud800.{SIG}",
    "signature with padding": f"{GOOD}=",
    "impossible length": f"{HEAD}.{BODY}.{SIG}a",
    "payload changed": HEAD + "." + _b64(b'{"sub":"admin"}') + "." + SIG,
    "signature truncated": f"{HEAD}.{BODY}.{SIG[:-2]}",
    "empty": "",
}


@pytest.mark.parametrize("token", BAD.values(), ids=BAD.keys())
def test_refused(token: str) -> None:
    with pytest.raises(jws.JwsError):
        jws.verify(token, lambda h: KEY)


def test_good_token_verifies() -> None:
    header, payload = jws.verify(GOOD, lambda h: KEY)
    assert header.alg == "HS256" and payload == b'{"sub":"u"}'


def test_only_the_canonical_signature_verifies() -> None:
    # 32 bytes are 43 base64 characters; the last carries 4 bits and 2 that decoders ignore, so
    # four spellings decode to the same MAC. Only the one with those 2 bits zero is the token.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(SIG[-1])
    spellings = [SIG[:-1] + alphabet[(last & ~3) | low] for low in range(4)]
    assert len(set(spellings)) == 4 and SIG in spellings
    assert all(base64.urlsafe_b64decode(s + "=") == base64.urlsafe_b64decode(SIG + "=") for s in spellings)
    for spelling in spellings:
        token = f"{HEAD}.{BODY}.{spelling}"
        if spelling == SIG:
            assert jws.verify(token, lambda h: KEY)[1] == b'{"sub":"u"}'
        else:
            with pytest.raises(jws.JwsError, match="bad signature"):
                jws.verify(token, lambda h: KEY)
