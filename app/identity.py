"""The identity provider's signing keys: its JWKS fetched over HTTP, cached, refreshed on a schedule
and on an unknown `kid` (at most once per cooldown), kept while the provider is unreachable."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Collection
from typing import Any

import aiohttp
import jwt
import msgspec
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from .decoding import UNREADABLE
from .settings import PROVIDER_ALGORITHMS

log = logging.getLogger(__name__)

# The one algorithm each kind of key verifies. A key's own `alg`, when it names one, must agree:
# an RSA key labelled HS256 (its public numbers as an HMAC secret) is never used.
_ALGORITHM_OF = {("RSA", None): "RS256", ("EC", "P-256"): "ES256", ("OKP", "Ed25519"): "EdDSA"}
MIN_RSA_BITS = 2048
MAX_DOCUMENT_BYTES = 256 * 1024
FETCH_TIMEOUT_SECONDS = 5.0


class KeySetError(Exception):
    """The provider's answer is not a JWKS with a usable signing key."""


class _Jwk(msgspec.Struct, frozen=True):
    """The members of a JWK that decide whether and how it is used; PyJWT reads the rest."""

    kty: str
    kid: str | None = None
    alg: str | None = None
    use: str | None = None
    crv: str | None = None
    key_ops: list[str] | None = None
    d: str | None = None  # private key material: a provider that publishes it is misconfigured


class _Document(msgspec.Struct):
    keys: list[Any]  # each member checked on its own: one odd entry does not spoil the others


_document = msgspec.json.Decoder(_Document)
_fingerprint = msgspec.json.Encoder(order="sorted").encode


def _algorithm(jwk: _Jwk, accepted: Collection[str]) -> str | None:
    """The algorithm `jwk` verifies, or None when it is not a signing key this service accepts."""
    if jwk.use not in (None, "sig") or (jwk.key_ops is not None and "verify" not in jwk.key_ops) or jwk.d is not None:
        return None
    algorithm = _ALGORITHM_OF.get((jwk.kty, None if jwk.kty == "RSA" else jwk.crv))
    if algorithm is None or (jwk.alg is not None and jwk.alg != algorithm) or algorithm not in accepted:
        return None
    return algorithm


def parse_key_set(document: bytes, accepted: Collection[str]) -> dict[str, tuple[jwt.PyJWK, bytes]]:
    """The usable signing keys of a JWKS document by `kid`, each with its JWK's fingerprint (a kid
    named twice: the first); KeySetError when there is none."""
    try:
        entries = _document.decode(document).keys
    except UNREADABLE:
        raise KeySetError("not a JWKS document") from None
    keys: dict[str, tuple[jwt.PyJWK, bytes]] = {}
    for entry in entries:
        try:
            jwk = msgspec.convert(entry, _Jwk)
        except msgspec.ValidationError:
            continue
        algorithm = _algorithm(jwk, accepted)
        if algorithm is None or not jwk.kid or jwk.kid in keys:  # (an empty kid names no key)
            continue
        try:
            key = jwt.PyJWK(entry, algorithm)
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            continue
        if isinstance(key.key, RSAPublicKey) and key.key.key_size < MIN_RSA_BITS:
            continue
        keys[jwk.kid] = (key, _fingerprint(entry))
    if not keys:
        raise KeySetError(f"no usable signing key among {len(entries)}")
    return keys


class ProviderKeys:
    """The signing keys at `url` by `kid`: fetched on schedule (`run`) and for an unknown kid at most
    once per cooldown (`refresh_for`, one fetch shared by all who wait); a failed fetch keeps them."""

    def __init__(
        self,
        url: str,
        *,
        algorithms: Collection[str] = PROVIDER_ALGORITHMS,
        refresh_seconds: float = 300.0,
        cooldown_seconds: float = 30.0,
        timeout_seconds: float = FETCH_TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.algorithms = frozenset(algorithms) & frozenset(PROVIDER_ALGORITHMS)
        self.refresh_seconds = refresh_seconds
        self.cooldown_seconds = cooldown_seconds
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self.clock = clock  # monotonic seconds: when the last fetch started, for the cooldown
        # Moves when a key leaves the set or changes: what it verified must be verified again.
        self.generation = 0
        self.fetches = 0  # fetches started, successful or not
        self._keys: dict[str, tuple[jwt.PyJWK, bytes]] = {}
        self._last_fetch = -math.inf
        self._fetching: asyncio.Task[bool] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def get(self, kid: str) -> jwt.PyJWK | None:
        """The cached key named `kid`, if any; never fetches."""
        entry = self._keys.get(kid)
        return None if entry is None else entry[0]

    @property
    def kids(self) -> frozenset[str]:
        """The names of the keys held now."""
        return frozenset(self._keys)

    async def refresh_for(self, kid: str) -> jwt.PyJWK | None:
        """The key named `kid`, fetching the set first when it is not cached, unless a fetch
        started less than the cooldown ago (then None: a flood of made-up kids costs one fetch)."""
        key = self.get(kid)
        if key is not None:
            return key
        if self._fetching is None and self.clock() - self._last_fetch < self.cooldown_seconds:
            return None
        await self.refresh()
        return self.get(kid)

    async def refresh(self) -> bool:
        """Fetch the set now, or join the fetch under way; whether it succeeded. The fetch goes on
        when a waiter is cancelled (a client that hung up), for the others."""
        fetching = self._fetching
        if fetching is None:
            self._last_fetch = self.clock()
            fetching = self._fetching = asyncio.get_running_loop().create_task(self._fetch(), name="identity-keys")
            fetching.add_done_callback(self._fetched)
        return await asyncio.shield(fetching)

    def _fetched(self, task: asyncio.Task[bool]) -> None:
        if self._fetching is task:
            self._fetching = None
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("identity provider keys: fetch failed unexpectedly", exc_info=exc)

    async def _fetch(self) -> bool:
        self.fetches += 1
        try:
            self.load(await self._download())
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError, KeySetError) as exc:
            log.warning(
                "identity provider keys: fetching %s failed (%s); keeping the %d keys held",
                self.url,
                str(exc) or type(exc).__name__,
                len(self._keys),
            )
            return False
        return True

    async def _download(self) -> bytes:
        if self._session is None:
            if self._closed:
                raise KeySetError("stopped")
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        # No redirects: the configured URL is the one trusted with the keys.
        async with self._session.get(self.url, allow_redirects=False) as response:
            if response.status != 200:
                raise KeySetError(f"HTTP {response.status}")
            body = bytearray()
            async for chunk in response.content.iter_chunked(65_536):
                body += chunk
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise KeySetError(f"larger than {MAX_DOCUMENT_BYTES} bytes")
            return bytes(body)

    def load(self, document: bytes) -> None:
        """Hold the keys of a JWKS document instead of those held now, as a fetch does with the
        provider's answer; KeySetError (and nothing changes) when it has no usable key."""
        keys = parse_key_set(document, self.algorithms)
        if any(keys.get(kid, (None, b""))[1] != fingerprint for kid, (_, fingerprint) in self._keys.items()):
            self.generation += 1
        if keys.keys() != self._keys.keys():
            log.info("identity provider keys: %d held (%s)", len(keys), ", ".join(sorted(keys)[:10]))
        self._keys = keys

    async def run(self) -> None:
        """Refresh every `refresh_seconds`; after a failure, again once the cooldown has passed."""
        while True:
            succeeded = await self.refresh()
            await asyncio.sleep(self.refresh_seconds if succeeded else self.cooldown_seconds)

    async def close(self) -> None:
        """Stop a fetch under way and close the HTTP session; no fetch starts after."""
        self._closed = True
        fetching = self._fetching
        if fetching is not None:
            fetching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await fetching
        if self._session is not None:
            await self._session.close()
            self._session = None
