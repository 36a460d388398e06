"""Storage: the system of record behind one narrow interface, one module per backend."""

from __future__ import annotations

import math
from typing import Any, Protocol

from ..errors import ActionTooFast, ApiError, InvalidToken, RateLimited, TokenAlreadyUsed, TokenExpired
from ..records import Award, AwardClaim, TokenGrant, UserRecord


def check_unused(held: int, first_expiry_ms: int | None, *, now_ms: int, max_unused: int | None) -> None:
    """Refuse (429) a user who already holds `max_unused` unexpired unused tokens; Retry-After is
    when the first of them expires."""
    if max_unused is not None and held >= max_unused:
        wait_ms = (first_expiry_ms or now_ms) - now_ms
        raise RateLimited(max(1, math.ceil(wait_ms / 1000)), "Too many unused action tokens for this user")


class Store(Protocol):
    """The system of record. Every write is one transaction; awards are exactly-once."""

    async def open(self) -> None:
        """Connect and apply migrations."""

    async def close(self) -> None:
        """Flush pending writes and disconnect; safe to call twice."""

    async def ping(self) -> None:
        """Raise if the store cannot be reached."""

    async def grant(self, grant: TokenGrant, *, max_unused: int | None = None) -> None:
        """Record an issued token; refuse an action the user already completed, and a user who
        already holds `max_unused` unexpired unused tokens (checked in the same transaction)."""

    async def award(self, claim: AwardClaim) -> Award:
        """Consume the token and raise the score in one transaction, or raise a domain error."""

    async def user(self, user_id: str) -> UserRecord | None:
        """One user's row."""

    async def standings(self) -> list[UserRecord]:
        """Every user on the board, for rebuilding the rank index."""

    async def purge_tokens(self, expired_before_ms: int) -> int:
        """Delete token rows that expired before the given time; return how many."""


def refusal(claim: AwardClaim, token: tuple[Any, ...] | None) -> ApiError:
    """Why a token's conditional update matched nothing, from its row (user_id, action_type,
    action_id, used_at, expires_at) or None when it is not recorded. Every store answers alike."""
    if token is None:
        return InvalidToken("Action token is not known to this server")
    user_id, action_type, action_id, used_at, expires_at = token
    if (user_id, action_type, action_id) != (claim.user_id, claim.action_type, claim.action_id):
        return InvalidToken("Action token is not known to this server")
    if used_at is not None:
        return TokenAlreadyUsed()
    if expires_at <= claim.now_ms:
        return TokenExpired()
    return ActionTooFast(details={"minSeconds": claim.min_elapsed_ms / 1000})
