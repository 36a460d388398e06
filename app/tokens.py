"""Action tokens: HS256 JWTs under their own key, one nonce each, rotatable by `kid`."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

import jwt
import msgspec

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


def key_id(secret: bytes) -> str:
    """A public name for a key that reveals nothing about it."""
    return hmac.new(secret, b"scoreboard action key id", hashlib.sha256).hexdigest()[:16]


def token_hash(token: str) -> str:
    """SHA-256 of the token text, kept for audit instead of the token."""
    return hashlib.sha256(token.encode()).hexdigest()


class ActionTokens:
    """Issues tokens with the current key; verifies with the current or a previous one."""

    def __init__(self, secret: bytes, *, previous: tuple[bytes, ...] = (), ttl_seconds: int = 300) -> None:
        self._kid = key_id(secret)
        self._secret = secret
        self._keys = {key_id(k): k for k in (*previous, secret)}
        self.ttl_seconds = ttl_seconds
        self._jwt = jwt.PyJWT(options={"require": ["exp", "iat"], "verify_iat": False})

    def issue(
        self, *, user_id: str, action_type: str, action_id: str, score_increment: int
    ) -> tuple[str, ActionClaims]:
        """A fresh token and its claims."""
        now = int(time.time())
        claims = ActionClaims(
            user_id=user_id,
            action_type=action_type,
            action_id=action_id,
            score_increment=score_increment,
            nonce=secrets.token_urlsafe(18),
            iat=now,
            exp=now + self.ttl_seconds,
        )
        headers = {"kid": self._kid, "typ": ACTION_TOKEN_TYPE}
        token = jwt.encode(msgspec.to_builtins(claims), self._secret, algorithm="HS256", headers=headers)
        return token, claims

    def verify(self, token: str) -> ActionClaims:
        """The claims of a genuine, unexpired action token; InvalidToken or TokenExpired otherwise."""
        try:
            header = jwt.get_unverified_header(token)
            key = self._keys.get(header.get("kid", ""))
            if key is None or header.get("typ") != ACTION_TOKEN_TYPE:
                raise InvalidToken()
            payload = self._jwt.decode(token, key, algorithms=["HS256"])
            return msgspec.convert(payload, ActionClaims)
        except jwt.ExpiredSignatureError:
            raise TokenExpired() from None
        except (jwt.PyJWTError, msgspec.ValidationError, ValueError, TypeError, OverflowError):
            raise InvalidToken() from None
