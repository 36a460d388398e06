"""A test identity provider: RS256, ES256 and EdDSA keys made here (none is ever stored), its JWKS
served over a real local HTTP server, key rotation, outages, and the tokens it signs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

ISSUER = "https://id.example"
AUDIENCE = "scoreboard"
JWKS_PATH = "/.well-known/jwks.json"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def new_key(alg: str) -> PrivateKey:
    """A fresh private key for `alg`."""
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(alg)


def algorithm_of(key: PrivateKey) -> str:
    """The one algorithm a key of this kind signs with."""
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    return "ES256" if isinstance(key, ec.EllipticCurvePrivateKey) else "EdDSA"


def public_jwk(key: PrivateKey, alg: str, kid: str) -> dict[str, Any]:
    """The public half of `key` as a JWK (`alg` named, as most providers do)."""
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        text = RSAAlgorithm.to_jwk(public)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        text = ECAlgorithm.to_jwk(public)
    else:
        text = OKPAlgorithm.to_jwk(public)
    jwk: dict[str, Any] = json.loads(text)
    jwk.pop("key_ops", None)  # most providers name `use` only
    return {**jwk, "kid": kid, "alg": alg, "use": "sig"}


def public_pem(key: PrivateKey) -> bytes:
    """The public key as PEM, as an attacker who read the JWKS could write it."""
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def b64(data: bytes | str) -> str:
    """base64url without padding."""
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class IdentityProvider:
    """Signs users' tokens and publishes its keys at JWKS_PATH; `down` answers 503, `stop()` and
        `start()` take the server itself away and bring it back on the same port; while `answer` is
    set, what it makes is served instead of the JWKS."""

    def __init__(self, *, issuer: str = ISSUER, audience: str = AUDIENCE) -> None:
        self.issuer = issuer
        self.audience = audience
        self.keys: dict[str, tuple[str, PrivateKey]] = {}  # kid -> (alg, private key), published
        self.retired: dict[str, tuple[str, PrivateKey]] = {}  # no longer published, still able to sign
        self.extra: list[Any] = []  # further JWKS members served as they are
        self.fetches = 0
        self.down = False
        self.answer: Callable[[], web.StreamResponse] | None = None  # makes what is served instead, while set
        self.paths: dict[str, int] = {}  # requests per path, the JWKS's and any other
        self._serial = 0
        self._server: TestServer | None = None
        self._port = 0

    def add_key(self, alg: str) -> str:
        """Publish a new key; its kid."""
        self._serial += 1
        kid = f"{alg.lower()}-{self._serial}"
        self.keys[kid] = (alg, new_key(alg))
        return kid

    def kid(self, alg: str) -> str:
        """The kid of the first published key of `alg`."""
        return next(kid for kid, (key_alg, _) in self.keys.items() if key_alg == alg)

    def rotate(self, kid: str) -> str:
        """Replace the key `kid` by a new one of the same algorithm; the new kid."""
        self.retired[kid] = self.keys.pop(kid)
        return self.add_key(self.retired[kid][0])

    def jwks(self) -> dict[str, Any]:
        """The document served."""
        return {"keys": [public_jwk(key, alg, kid) for kid, (alg, key) in self.keys.items()] + self.extra}

    def claims(self, sub: str = "alice", **claims: Any) -> dict[str, Any]:
        """A valid claim set for `sub`, with `claims` over it."""
        now = int(time.time())
        return {"sub": sub, "exp": now + 600, "iat": now, "iss": self.issuer, "aud": self.audience, **claims}

    def sign(self, kid: str, sub: str = "alice", *, key: PrivateKey | None = None, **claims: Any) -> str:
        """A token for `sub` signed with the key `kid`, retired or not (or with `key`, naming `kid`)."""
        signer = key or {**self.retired, **self.keys}[kid][1]
        return jwt.encode(self.claims(sub, **claims), signer, algorithm=algorithm_of(signer), headers={"kid": kid})

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        self.paths[request.path] = self.paths.get(request.path, 0) + 1
        if request.path != JWKS_PATH:
            # Anything else this server holds is an attacker's set of keys: never to be fetched.
            return web.json_response({"keys": []})
        self.fetches += 1
        if self.down:
            return web.Response(status=503, text="maintenance")
        if self.answer is not None:
            return self.answer()
        return web.json_response(self.jwks())

    async def start(self) -> None:
        """Serve on 127.0.0.1 (on the port of the first start, when started again)."""
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._serve)
        self._server = TestServer(app, host="127.0.0.1", port=self._port)
        await self._server.start_server()
        self._port = self._server.port or 0

    async def stop(self) -> None:
        """Stop serving: connections to the port are refused."""
        if self._server is not None:
            await self._server.close()
            self._server = None

    @property
    def url(self) -> str:
        """The JWKS URL."""
        return f"http://127.0.0.1:{self._port}{JWKS_PATH}"

    def url_of(self, path: str) -> str:
        """Another URL on the same server."""
        return f"http://127.0.0.1:{self._port}{path}"


@pytest.fixture
async def idp() -> AsyncIterator[IdentityProvider]:
    """A running provider with one RS256, one ES256 and one EdDSA key."""
    provider = IdentityProvider()
    for alg in ("RS256", "ES256", "EdDSA"):
        provider.add_key(alg)
    await provider.start()
    yield provider
    await provider.stop()


class Clock:
    """Monotonic seconds that move only when a test moves them."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def raw(header: dict[str, Any], claims: dict[str, Any] | str, signature: bytes = b"x") -> str:
    """A token with this header and claims and a signature that is none of anyone's."""
    body = claims if isinstance(claims, str) else json.dumps(claims)
    return f"{b64(json.dumps(header))}.{b64(body)}.{b64(signature)}"


def hs256(claims: dict[str, Any], secret: bytes, kid: str) -> str:
    """Signed by hand: PyJWT itself will not take a public key as an HMAC secret."""
    signing_input = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid})) + "." + b64(json.dumps(claims))
    return signing_input + "." + b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())


CONFUSIONS = (
    "RSA public key PEM as HS256 secret",
    "RSA JWK as HS256 secret",
    "alg none",
    "alg None",
    "no alg",
    "alg RS512 with the RSA key",
    "PS256 with the RSA key",
    "ES256 header naming the RSA key",
    "RS256 header naming the EC key",
    "EdDSA header naming the EC key",
    "a key of the attacker under a known kid",
    "a key of the attacker in the jwk header",
    "HS256 with the shared secret",
)


def forged_tokens(idp: IdentityProvider, secret: bytes) -> dict[str, str]:
    """Tokens that pass one key or algorithm off as another, by the names of CONFUSIONS (the last
    one genuine where HS256 with `secret` is accepted)."""
    rs, es, ed = (idp.kid(alg) for alg in ("RS256", "ES256", "EdDSA"))
    claims = idp.claims()
    rsa_key = idp.keys[rs][1]
    attacker = new_key("ES256")
    return {
        # The provider's public key, which anyone can read, used as an HMAC secret.
        "RSA public key PEM as HS256 secret": hs256(claims, public_pem(rsa_key), rs),
        "RSA JWK as HS256 secret": hs256(claims, json.dumps(public_jwk(rsa_key, "RS256", rs)).encode(), rs),
        "alg none": raw({"alg": "none", "kid": rs}, claims, b""),
        "alg None": raw({"alg": "None", "kid": rs}, claims, b""),
        "no alg": raw({"kid": rs}, claims),
        "alg RS512 with the RSA key": jwt.encode(claims, rsa_key, algorithm="RS512", headers={"kid": rs}),
        "PS256 with the RSA key": jwt.encode(claims, rsa_key, algorithm="PS256", headers={"kid": rs}),
        "ES256 header naming the RSA key": idp.sign(rs, key=idp.keys[es][1]),
        "RS256 header naming the EC key": idp.sign(es, key=rsa_key),
        "EdDSA header naming the EC key": idp.sign(es, key=idp.keys[ed][1]),
        "a key of the attacker under a known kid": idp.sign(rs, key=new_key("RS256")),
        "a key of the attacker in the jwk header": jwt.encode(
            claims,
            attacker,
            algorithm="ES256",
            headers={"kid": "attacker", "jwk": public_jwk(attacker, "ES256", "attacker")},
        ),
        "HS256 with the shared secret": jwt.encode(claims, secret, algorithm="HS256", headers={"kid": rs}),
    }


HOSTILE = (
    "non-ASCII",
    "non-ASCII kid",
    "invalid base64 header",
    "invalid base64 payload",
    "base64 padding in the signature",
    "a space inside",
    "two segments",
    "four segments",
    "empty segments",
    "huge header",
    "nested header",
    "nested payload, signed",
    "payload not an object, signed",
    "payload not JSON, signed",
    "header an array",
    "header a string",
    "kid with path characters",
    "kid a URL",
    "kid a number",
    "kid an object",
    "kid null",
    "no kid",
    "alg a list",
    "jku to another key set",
    "x5u to another key set",
    "crit extension",
    "b64 false",
    "action token typ",
    "exp infinite, signed",
    "exp far ahead",
    "expired",
    "sub not an id",
)


def hostile_tokens(idp: IdentityProvider) -> dict[str, str]:
    """Tokens made to break a parser, by the names of HOSTILE: each is a 401, never anything else."""
    rs = idp.kid("RS256")
    rsa_key = idp.keys[rs][1]
    assert isinstance(rsa_key, rsa.RSAPrivateKey)
    claims = idp.claims()
    nested = "[" * 1100 + "]" * 1100  # deeper than the interpreter's recursion limit, within max_token_bytes
    good = idp.sign(rs)
    head, body, signature = good.split(".")

    def signed(header: dict[str, Any], payload: str) -> str:
        """Signed with the provider's own RSA key, so only what it says can be refused."""
        signing_input = b64(json.dumps(header)) + "." + b64(payload)
        return signing_input + "." + b64(RSAAlgorithm(RSAAlgorithm.SHA256).sign(signing_input.encode(), rsa_key))

    def unsigned(header: str, payload: str = json.dumps(claims)) -> str:
        return b64(header) + "." + b64(payload) + "." + b64(b"x")

    return {
        "non-ASCII": good[:-4] + "é" + "aa",
        "non-ASCII kid": raw({"alg": "RS256", "kid": "ключ"}, claims),
        "invalid base64 header": "@@@." + body + "." + signature,
        "invalid base64 payload": head + ".!!!." + signature,
        "base64 padding in the signature": good + "=",
        "a space inside": good[:20] + " " + good[20:],
        "two segments": head + "." + body,
        "four segments": good + ".x",
        "empty segments": "..",
        "huge header": raw({"alg": "RS256", "kid": rs, "x": "h" * 2800}, claims),
        "nested header": unsigned('{"alg":"RS256","x":' + nested + "}"),
        "nested payload, signed": signed({"alg": "RS256", "kid": rs}, '{"sub":"u","x":' + nested + "}"),
        "payload not an object, signed": signed({"alg": "RS256", "kid": rs}, "[1,2]"),
        "payload not JSON, signed": signed({"alg": "RS256", "kid": rs}, "\xff not json"),
        "header an array": unsigned("[1]"),
        "header a string": unsigned('"RS256"'),
        "kid with path characters": raw({"alg": "RS256", "kid": "../../../etc/passwd"}, claims),
        "kid a URL": raw({"alg": "RS256", "kid": "http://127.0.0.1:1/keys?x=%00"}, claims),
        "kid a number": raw({"alg": "RS256", "kid": 7}, claims),
        "kid an object": raw({"alg": "RS256", "kid": {"$ne": None}}, claims),
        "kid null": raw({"alg": "RS256", "kid": None}, claims),
        "no kid": raw({"alg": "RS256"}, claims),
        "alg a list": raw({"alg": ["RS256"], "kid": rs}, claims),
        "jku to another key set": raw({"alg": "RS256", "kid": "attacker", "jku": idp.url_of("/attacker")}, claims),
        "x5u to another key set": raw({"alg": "RS256", "kid": "attacker", "x5u": idp.url_of("/x5u")}, claims),
        "crit extension": signed({"alg": "RS256", "kid": rs, "crit": ["exp"], "exp": 1}, json.dumps(claims)),
        "b64 false": signed({"alg": "RS256", "kid": rs, "b64": False, "crit": ["b64"]}, json.dumps(claims)),
        "action token typ": signed({"alg": "RS256", "kid": rs, "typ": "sb-action+jwt"}, json.dumps(claims)),
        "exp infinite, signed": signed({"alg": "RS256", "kid": rs}, '{"sub":"u","exp":1e999}'),
        "exp far ahead": idp.sign(rs, exp=int(time.time()) + 10 * 86_400),
        "expired": idp.sign(rs, exp=int(time.time()) - 3600),
        "sub not an id": idp.sign(rs, sub="a b<"),
    }
