"""Users' bearer JWTs, checked with PyJWT: HS256 with the shared secret, RS256, ES256 and EdDSA with
the identity provider's keys (app/identity.py); `sub` and `exp` required, display names cleaned."""

from __future__ import annotations

import functools
import math
import re
import time
import unicodedata
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import jwt
import msgspec

from .config import MIN_HS256_SECRET_BYTES, Config
from .decoding import UNREADABLE
from .errors import Forbidden, Unauthorized
from .identity import ProviderKeys
from .settings import HS256, ID_PATTERN
from .tokens import ACTION_TOKEN_TYPE

MAX_NAME_CHARS = 64
VERIFIED_CACHE_SIZE = 4096
_ID = re.compile(ID_PATTERN)
_SPACES = frozenset("\t\n\r\v\f\u2028\u2029")
# Control, format (zero-width, bidi overrides), private-use, unassigned, surrogates, separators.
_DROPPED = {"Cc", "Cf", "Co", "Cn", "Cs", "Zl", "Zp"}
# Unicode's Default_Ignorable_Code_Point characters that those categories keep: they render as
# nothing, so a name of them alone looks blank. The combining grapheme joiner, Khmer inherent
# vowels and variation selectors (Mn); the Hangul fillers (Lo).
_IGNORABLE = frozenset(
    chr(code)
    for first, last in (
        (0x034F, 0x034F),
        (0x115F, 0x1160),
        (0x17B4, 0x17B5),
        (0x180B, 0x180D),
        (0x180F, 0x180F),
        (0x3164, 0x3164),
        (0xFE00, 0xFE0F),
        (0xFFA0, 0xFFA0),
        (0xE0100, 0xE01EF),
    )
    for code in range(first, last + 1)
)
_PRESENTATION = frozenset("\ufe0e\ufe0f")  # text and emoji presentation of the character before
_KEYCAP_BASES = frozenset("0123456789#*")


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """The authenticated caller."""

    user_id: str
    name: str
    expires_at: float
    roles: frozenset[str] = frozenset()  # the token's `roles` claim

    def require_role(self, role: str) -> None:
        """FORBIDDEN unless the caller's token holds this role (the operators' `auth.admin_role`)."""
        if role not in self.roles:
            raise Forbidden("This route is for operators (the admin role)")


class _Claims(msgspec.Struct, kw_only=True):
    sub: str
    exp: int | float
    nbf: int | float | None = None
    iat: int | float | None = None
    iss: str | None = None
    aud: str | list[str] | None = None
    name: str | None = None
    preferred_username: str | None = None
    roles: list[str] | str | None = None


_claims = msgspec.json.Decoder(_Claims)
# Short keys are refused up front (a secret here, RSA keys in app/identity.py): a short one reaching
# PyJWT is an error, not a warning on every token.
_JWS = jwt.PyJWS(options={"enforce_minimum_key_length": True})


@functools.lru_cache(maxsize=64)
def _header(segment: str) -> Mapping[str, Any]:
    """The protected header, read by PyJWT to choose the key. A service sees a handful of distinct
    headers (one per key), so each is read once; a failure raises and is not remembered."""
    return MappingProxyType(_JWS.get_unverified_header(f"{segment}.."))


def clean_display_name(raw: str | None, fallback: str) -> str:
    """Drop control and invisible characters, trim, cap at 64 characters; fall back to the id."""
    if not raw:
        return fallback
    # Whitespace controls (newline, tab) become spaces; other invisible characters go, but for the
    # emoji and text presentation selectors right after a symbol or a keycap's digit ("❤️", "1️⃣").
    kept: list[str] = []
    for ch in unicodedata.normalize("NFC", raw):
        if ch in _SPACES:
            kept.append(" ")
        elif ch in _PRESENTATION:
            if kept and (kept[-1] in _KEYCAP_BASES or unicodedata.category(kept[-1]) == "So"):
                kept.append(ch)
        elif ch not in _IGNORABLE and unicodedata.category(ch) not in _DROPPED:
            kept.append(ch)
    text = " ".join("".join(kept).split())[:MAX_NAME_CHARS].strip()
    return text or fallback


class UnknownKey(Unauthorized):
    """The token names a key that the cached set of the provider lacks; `authenticate` fetches the
    set and tries once more, a synchronous caller gets this 401."""

    def __init__(self, kid: str) -> None:
        super().__init__("Bearer token is signed with an unknown key")
        self.kid = kid


class UserAuth:
    """Verifies (and, for development and tests, issues) users' bearer JWTs: HS256 with `secret`
    (None: HS256 refused), the provider's algorithms with its keys (None: no provider)."""

    def __init__(
        self,
        secret: bytes | None,
        *,
        provider: ProviderKeys | None = None,
        leeway_seconds: int = 10,
        max_token_bytes: int = 4096,
        issuer: str | None = None,
        audience: str | None = None,
        max_lifetime_seconds: int = 86_400,
    ) -> None:
        if secret is not None and len(secret) < MIN_HS256_SECRET_BYTES:
            raise ValueError(f"an HS256 secret has at least {MIN_HS256_SECRET_BYTES} bytes (RFC 7518, 3.2)")
        self._secret = secret
        self.provider = provider
        self.leeway = leeway_seconds  # seconds past `exp` a token is still accepted (clock skew)
        self._max_bytes = max_token_bytes
        self.issuer = issuer
        self.audience = audience
        self.max_lifetime_seconds = max_lifetime_seconds
        # A client sends the same bearer with every request: the answer for that exact text is
        # kept (bounded, oldest out first) and only its expiry is checked again.
        self._verified: dict[str, Principal] = {}
        self._generation = 0 if provider is None else provider.generation

    @classmethod
    def for_config(cls, config: Config) -> UserAuth:
        """The verifier (and, for development, issuer) that a configuration describes."""
        settings = config.auth
        algorithms = settings.accepted_algorithms
        provider = None
        if settings.jwks_url is not None:
            provider = ProviderKeys(
                settings.jwks_url,
                algorithms=algorithms,
                refresh_seconds=settings.jwks_refresh_seconds,
                cooldown_seconds=settings.jwks_cooldown_seconds,
            )
        return cls(
            config.secrets.jwt if HS256 in algorithms else None,
            provider=provider,
            leeway_seconds=settings.leeway_seconds,
            max_token_bytes=settings.max_token_bytes,
            issuer=settings.issuer,
            audience=settings.audience,
            max_lifetime_seconds=settings.max_lifetime_seconds,
        )

    @property
    def accepts_hs256(self) -> bool:
        """Whether HS256 tokens signed with the shared secret are accepted (and can be issued)."""
        return self._secret is not None

    def issue(
        self, user_id: str, *, name: str | None = None, ttl_seconds: int = 3600, roles: tuple[str, ...] = ()
    ) -> str:
        """A user JWT signed with the shared secret (HS256), as the identity system would issue it."""
        if self._secret is None:
            raise ValueError("HS256 is not accepted: user tokens come from the identity provider")
        claims: dict[str, object] = {"sub": user_id, "exp": int(time.time()) + ttl_seconds, "iat": int(time.time())}
        if name is not None:
            claims["name"] = name
        if roles:
            claims["roles"] = list(roles)
        if self.issuer is not None:
            claims["iss"] = self.issuer
        if self.audience is not None:
            claims["aud"] = self.audience
        return jwt.encode(claims, self._secret, algorithm=HS256)

    @property
    def verified_count(self) -> int:
        """How many verified tokens are remembered now (at most VERIFIED_CACHE_SIZE)."""
        return len(self._verified)

    def remembers(self, token: str) -> bool:
        """Whether `token`'s verification is remembered (its next `verify` checks only the expiry)."""
        return token in self._verified

    async def from_header(self, header: str | None) -> Principal:
        """Parse `Authorization: Bearer <JWT>` and `authenticate` its token."""
        if header is None:
            raise Unauthorized("Authorization header is missing", error=None)
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            raise Unauthorized("Authorization must use the Bearer scheme", error=None)
        token = token.strip()
        try:  # `authenticate`, inline: the remembered bearer of every request skips a coroutine
            return self.verify(token)
        except UnknownKey as unknown:
            return await self._fetch_and_verify(token, unknown)

    async def authenticate(self, token: str) -> Principal:
        """`verify`; when the token names a key the provider's cached set lacks, fetch the set (at
        most once per cooldown) and verify again. Unauthorized for anything invalid."""
        try:
            return self.verify(token)
        except UnknownKey as unknown:
            return await self._fetch_and_verify(token, unknown)

    async def _fetch_and_verify(self, token: str, unknown: UnknownKey) -> Principal:
        if self.provider is None or await self.provider.refresh_for(unknown.kid) is None:
            raise unknown
        return self.verify(token)

    def verify(self, token: str) -> Principal:
        """The principal of a valid token, with the keys held now (never fetches); Unauthorized
        (UnknownKey for a key not held) for anything else."""
        if not token:
            raise Unauthorized("Bearer token is missing", error=None)
        if len(token) > self._max_bytes:
            raise Unauthorized("Bearer token is too large")
        if self.provider is not None and self.provider.generation != self._generation:
            # A key left the provider's set (or changed): what it verified is not vouched for.
            self._verified.clear()
            self._generation = self.provider.generation
        known = self._verified.pop(token, None)
        if known is not None and known.expires_at > time.time() - self.leeway:
            self._verified[token] = known
            return known
        principal = self._verify(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = principal
        return principal

    def _key_for(self, header: Mapping[str, object]) -> tuple[jwt.PyJWK | bytes, str]:
        """The key that may verify a token with this header, and its one algorithm."""
        if header.get("typ") == ACTION_TOKEN_TYPE:
            raise Unauthorized("An action token is not a user token")
        if "crit" in header:  # no extension is understood here, so none may be critical
            raise Unauthorized("Bearer token is invalid")
        alg = header.get("alg")
        if alg == HS256:
            if self._secret is None:  # only the provider's keys: no secret to confuse one with
                raise Unauthorized("Bearer token algorithm is not accepted")
            return self._secret, HS256
        if self.provider is None or not isinstance(alg, str) or alg not in self.provider.algorithms:
            raise Unauthorized("Bearer token algorithm is not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise Unauthorized("Bearer token names no key")
        key = self.provider.get(kid)
        if key is None:
            raise UnknownKey(kid)
        if key.algorithm_name != alg:  # each key verifies with the one algorithm its kind decides
            raise Unauthorized("Bearer token algorithm does not match its key")
        return key, alg

    def _verify(self, token: str) -> Principal:
        # base64url throughout (PyJWT would read other text as UTF-8), and unpadded (RFC 7515): PyJWT
        # takes a padded signature too, which would give every token a second spelling.
        if not token.isascii() or "=" in token:
            raise Unauthorized("Bearer token is invalid")
        try:
            key, algorithm = self._key_for(_header(token.partition(".")[0]))
            payload = _JWS.decode_complete(token, key, algorithms=[algorithm])["payload"]
        except jwt.PyJWTError:
            raise Unauthorized("Bearer token is invalid") from None
        try:
            claims = _claims.decode(payload)
        except UNREADABLE:
            raise Unauthorized("Bearer token is invalid") from None
        if not (
            math.isfinite(claims.exp)
            and (claims.nbf is None or math.isfinite(claims.nbf))
            and (claims.iat is None or math.isfinite(claims.iat))
        ):
            raise Unauthorized("Bearer token is invalid")
        now = time.time()
        if claims.exp <= now - self.leeway:
            raise Unauthorized("Bearer token has expired")
        if claims.exp > now + self.max_lifetime_seconds + self.leeway:
            # A stolen token of such a lifetime would be good for too long.
            raise Unauthorized("Bearer token expires too far in the future")
        if (claims.nbf is not None and claims.nbf > now + self.leeway) or (
            claims.iat is not None and claims.iat > now + self.leeway
        ):
            raise Unauthorized("Bearer token is not valid yet")
        if self.issuer is not None and claims.iss != self.issuer:
            raise Unauthorized("Bearer token is from another issuer")
        if not self._for_us(claims.aud):
            raise Unauthorized("Bearer token is meant for another service")
        if not _ID.fullmatch(claims.sub):
            raise Unauthorized("Bearer token subject is not a valid user id")
        name = clean_display_name(claims.name or claims.preferred_username, claims.sub)
        roles = frozenset([claims.roles] if isinstance(claims.roles, str) else claims.roles or ())
        return Principal(user_id=claims.sub, name=name, expires_at=float(claims.exp), roles=roles)

    def _for_us(self, aud: str | list[str] | None) -> bool:
        # RFC 7519: a recipient that does not find itself in `aud` must reject the token. Without
        # a configured audience, a token that names any audience is meant for someone else.
        if aud is None:
            return self.audience is None
        return self.audience is not None and (aud == self.audience or (isinstance(aud, list) and self.audience in aud))
