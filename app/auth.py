"""Users' bearer JWTs: HS256 only, `sub` and `exp` required, display names cleaned."""

from __future__ import annotations

import math
import re
import time
import unicodedata

import msgspec

from . import jws
from .config import ID_PATTERN, Config
from .errors import Unauthorized
from .tokens import ACTION_TOKEN_TYPE

MAX_NAME_CHARS = 64
VERIFIED_CACHE_SIZE = 4096
_ID = re.compile(ID_PATTERN)
_SPACES = frozenset("\t\n\r\v\f\u2028\u2029")
# Control, format (zero-width, bidi overrides), private-use, unassigned, surrogates, separators.
_DROPPED = {"Cc", "Cf", "Co", "Cn", "Cs", "Zl", "Zp"}


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """The authenticated caller."""

    user_id: str
    name: str
    expires_at: float
    roles: frozenset[str] = frozenset()  # the token's `roles` claim


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


def clean_display_name(raw: str | None, fallback: str) -> str:
    """Drop control and invisible characters, trim, cap at 64 characters; fall back to the id."""
    if not raw:
        return fallback
    # Whitespace controls (newline, tab) become spaces; other invisible characters go.
    text = "".join(
        " " if ch in _SPACES else ch
        for ch in unicodedata.normalize("NFC", raw)
        if ch in _SPACES or unicodedata.category(ch) not in _DROPPED
    )
    text = " ".join(text.split())[:MAX_NAME_CHARS].strip()
    return text or fallback


class UserAuth:
    """Verifies (and, for development and tests, issues) users' bearer JWTs."""

    def __init__(
        self,
        secret: bytes,
        *,
        leeway_seconds: int = 10,
        max_token_bytes: int = 4096,
        issuer: str | None = None,
        audience: str | None = None,
        max_lifetime_seconds: int = 86_400,
    ) -> None:
        self._secret = secret
        self._leeway = leeway_seconds
        self._max_bytes = max_token_bytes
        self.issuer = issuer
        self.audience = audience
        self.max_lifetime_seconds = max_lifetime_seconds
        # A client sends the same bearer with every request: the answer for that exact text is
        # kept (bounded, oldest out first) and only its expiry is checked again.
        self._verified: dict[str, Principal] = {}

    @classmethod
    def for_config(cls, config: Config) -> UserAuth:
        """The verifier (and, for development, issuer) that a configuration describes."""
        settings = config.auth
        return cls(
            config.secrets.jwt,
            leeway_seconds=settings.leeway_seconds,
            max_token_bytes=settings.max_token_bytes,
            issuer=settings.issuer,
            audience=settings.audience,
            max_lifetime_seconds=settings.max_lifetime_seconds,
        )

    def issue(
        self, user_id: str, *, name: str | None = None, ttl_seconds: int = 3600, roles: tuple[str, ...] = ()
    ) -> str:
        """A signed user JWT, as the identity system would issue it."""
        claims: dict[str, object] = {"sub": user_id, "exp": int(time.time()) + ttl_seconds, "iat": int(time.time())}
        if name is not None:
            claims["name"] = name
        if roles:
            claims["roles"] = list(roles)
        if self.issuer is not None:
            claims["iss"] = self.issuer
        if self.audience is not None:
            claims["aud"] = self.audience
        return jws.sign(claims, self._secret, typ="JWT")

    @property
    def verified_count(self) -> int:
        """How many verified tokens are remembered now (at most VERIFIED_CACHE_SIZE)."""
        return len(self._verified)

    def remembers(self, token: str) -> bool:
        """Whether `token`'s verification is remembered (its next `verify` checks only the expiry)."""
        return token in self._verified

    def _key_for(self, header: jws.Header) -> bytes:
        return self._secret

    def verify(self, token: str) -> Principal:
        """The principal of a valid token; Unauthorized for anything else."""
        if not token or len(token) > self._max_bytes:
            raise Unauthorized("Bearer token is missing or too large")
        known = self._verified.pop(token, None)
        if known is not None and known.expires_at > time.time() - self._leeway:
            self._verified[token] = known
            return known
        principal = self._verify(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = principal
        return principal

    def _verify(self, token: str) -> Principal:
        try:
            header, claims = jws.verify_claims(token, self._key_for, _claims)
        except jws.JwsError:
            raise Unauthorized("Bearer token is invalid") from None
        if header.typ == ACTION_TOKEN_TYPE:
            raise Unauthorized("An action token is not a user token")
        if not (
            math.isfinite(claims.exp)
            and (claims.nbf is None or math.isfinite(claims.nbf))
            and (claims.iat is None or math.isfinite(claims.iat))
        ):
            raise Unauthorized("Bearer token is invalid")
        now = time.time()
        if claims.exp <= now - self._leeway:
            raise Unauthorized("Bearer token has expired")
        if claims.exp > now + self.max_lifetime_seconds + self._leeway:
            # A stolen token of such a lifetime would be good for too long.
            raise Unauthorized("Bearer token expires too far in the future")
        if (claims.nbf is not None and claims.nbf > now + self._leeway) or (
            claims.iat is not None and claims.iat > now + self._leeway
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

    def from_header(self, header: str | None) -> Principal:
        """Parse `Authorization: Bearer <JWT>`."""
        if header is None:
            raise Unauthorized("Authorization header is missing")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            raise Unauthorized("Authorization must use the Bearer scheme")
        return self.verify(token.strip())
