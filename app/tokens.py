"""Action tokens: HS256 JWTs under their own key, one nonce each, rotatable by `kid`."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable

import msgspec

from . import jws
from .clock import now_ms
from .errors import InvalidToken, TokenExpired

# A user JWT never carries this `typ`; an action token always does.
ACTION_TOKEN_TYPE = "sb-action+jwt"  # noqa: S105 - a type name, not a secret


class ActionClaims(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """The payload of an action token."""

    user_id: str
    action_type: str
    action_id: str
    score_increment: int
    nonce: str
    iat: int
    exp: int


_claims = msgspec.json.Decoder(ActionClaims)


def key_id(secret: bytes) -> str:
    """A public name for a key that reveals nothing about it."""
    return hmac.new(secret, b"scoreboard action key id", hashlib.sha256).hexdigest()[:16]


def token_hash(token: str) -> str:
    """SHA-256 of the token text, kept for audit instead of the token."""
    return hashlib.sha256(token.encode()).hexdigest()


class ActionTokens:
    """Issues tokens with the current key; verifies with the current or a previous one."""

    def __init__(
        self,
        secret: bytes,
        *,
        previous: tuple[bytes, ...] = (),
        ttl_seconds: int = 300,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._kid = key_id(secret)
        self._secret = secret
        self._keys = {key_id(k): k for k in (*previous, secret)}
        self.ttl_seconds = ttl_seconds
        self.clock = clock  # ms since the epoch: when a token is issued and until when it is good

    def issue(
        self, *, user_id: str, action_type: str, action_id: str, score_increment: int
    ) -> tuple[str, ActionClaims]:
        """A fresh token and its claims."""
        now = self.clock() // 1000
        claims = ActionClaims(
            user_id=user_id,
            action_type=action_type,
            action_id=action_id,
            score_increment=score_increment,
            nonce=secrets.token_urlsafe(18),
            iat=now,
            exp=now + self.ttl_seconds,
        )
        return jws.sign(claims, self._secret, typ=ACTION_TOKEN_TYPE, kid=self._kid), claims

    def _key_for(self, header: jws.Header) -> bytes | None:
        if header.typ != ACTION_TOKEN_TYPE:  # a user JWT is never an action token
            return None
        return self._keys.get(header.kid or "")

    def verify(self, token: str) -> ActionClaims:
        """The claims of a genuine, unexpired action token; InvalidToken or TokenExpired otherwise."""
        try:
            _, claims = jws.verify_claims(token, self._key_for, _claims)
        except jws.JwsError:
            raise InvalidToken() from None
        if claims.exp * 1000 <= self.clock():
            raise TokenExpired()
        return claims
