"""Users' bearer JWTs: HS256 only, `sub` and `exp` required, display names cleaned."""

from __future__ import annotations

import re
import time
import unicodedata

import jwt
import msgspec

from .config import ID_PATTERN
from .errors import Unauthorized
from .tokens import ACTION_TOKEN_TYPE

ALGORITHMS = ["HS256"]  # pinned: `none` and every other algorithm are refused
MAX_NAME_CHARS = 64
_ID = re.compile(ID_PATTERN)
_SPACES = frozenset("\t\n\r\v\f\u2028\u2029")
# Control, format (zero-width, bidi overrides), private-use, unassigned, surrogates, separators.
_DROPPED = {"Cc", "Cf", "Co", "Cn", "Cs", "Zl", "Zp"}


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """The authenticated caller."""

    user_id: str
    name: str
    expires_at: float


class _Claims(msgspec.Struct, kw_only=True):
    sub: str
    exp: int | float
    name: str | None = None
    preferred_username: str | None = None


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

    def __init__(self, secret: bytes, *, leeway_seconds: int = 10, max_token_bytes: int = 4096) -> None:
        self._secret = secret
        self._leeway = leeway_seconds
        self._max_bytes = max_token_bytes
        self._jwt = jwt.PyJWT(options={"require": ["exp", "sub"], "verify_aud": False})

    def issue(self, user_id: str, *, name: str | None = None, ttl_seconds: int = 3600) -> str:
        """A signed user JWT, as the identity system would issue it."""
        claims: dict[str, object] = {"sub": user_id, "exp": int(time.time()) + ttl_seconds, "iat": int(time.time())}
        if name is not None:
            claims["name"] = name
        return jwt.encode(claims, self._secret, algorithm="HS256")

    def verify(self, token: str) -> Principal:
        """The principal of a valid token; Unauthorized for anything else."""
        if not token or len(token) > self._max_bytes:
            raise Unauthorized("Bearer token is missing or too large")
        try:
            decoded = self._jwt.decode_complete(token, self._secret, algorithms=ALGORITHMS, leeway=self._leeway)
            if decoded["header"].get("typ") == ACTION_TOKEN_TYPE:
                raise Unauthorized("An action token is not a user token")
            claims = msgspec.convert(decoded["payload"], _Claims)
        except jwt.ExpiredSignatureError:
            raise Unauthorized("Bearer token has expired") from None
        except (jwt.PyJWTError, msgspec.ValidationError, ValueError, TypeError, OverflowError):
            raise Unauthorized("Bearer token is invalid") from None
        if not _ID.fullmatch(claims.sub):
            raise Unauthorized("Bearer token subject is not a valid user id")
        name = clean_display_name(claims.name or claims.preferred_username, claims.sub)
        return Principal(user_id=claims.sub, name=name, expires_at=float(claims.exp))

    def from_header(self, header: str | None) -> Principal:
        """Parse `Authorization: Bearer <JWT>`."""
        if header is None:
            raise Unauthorized("Authorization header is missing")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            raise Unauthorized("Authorization must use the Bearer scheme")
        return self.verify(token.strip())
