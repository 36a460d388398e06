"""The server's error codes as exceptions: one class per code, under one class per HTTP status,
all under `ScoreboardError`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar


class ScoreboardError(Exception):
    """A failure the server answered (or an answer that is not the API's): HTTP status, the
    contract's `error.code`, its message and details."""

    status_code: ClassVar[int | None] = None  # the status a subclass stands for
    error_code: ClassVar[str | None] = None  # the code a subclass stands for

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details


class UnexpectedResponse(ScoreboardError):
    """An answer without the API's envelope: something else answered (a proxy's error page), or
    the address is not a Scoreboard server."""

    error_code = "UNEXPECTED_RESPONSE"


class BadRequest(ScoreboardError):
    """400: the request was refused as it stands."""

    status_code = 400


class ValidationError(BadRequest):
    """A body, parameter or header is missing, malformed or out of range (`details` says which)."""

    error_code = "VALIDATION_ERROR"


class InvalidAction(BadRequest):
    """An action type the server's catalog does not have, or an action on a board it cannot award on."""

    error_code = "INVALID_ACTION"


class ActionMismatch(BadRequest):
    """The body's actionId is not the action token's."""

    error_code = "ACTION_MISMATCH"


class ActionTooFast(BadRequest):
    """The action was completed sooner than its minimum duration; the token stays usable."""

    error_code = "ACTION_TOO_FAST"

    @property
    def min_seconds(self) -> float | None:
        """The action's minimum duration from initialize, as the server gave it."""
        value = self.details.get("minSeconds") if isinstance(self.details, Mapping) else None
        return float(value) if isinstance(value, int | float) else None


class AuthenticationError(ScoreboardError):
    """401: a bearer JWT, service key or action token was not accepted."""

    status_code = 401


class Unauthorized(AuthenticationError):
    """No, a malformed, an expired or a wrongly signed bearer JWT or service key."""

    error_code = "UNAUTHORIZED"


class InvalidToken(AuthenticationError):
    """The action token is malformed, wrongly signed or unknown to the server."""

    error_code = "INVALID_TOKEN"


class TokenExpired(AuthenticationError):
    """The action token has expired: initialize again."""

    error_code = "TOKEN_EXPIRED"


class Forbidden(ScoreboardError):
    """403: authenticated, but not allowed (another user's action, an operator route, a service
    key without the scope or the board)."""

    status_code = 403
    error_code = "FORBIDDEN"


class Disqualified(Forbidden):
    """The user is disqualified: no awards or trusted writes until reinstated."""

    error_code = "DISQUALIFIED"


class NotFound(ScoreboardError):
    """404: no such thing."""

    status_code = 404
    error_code = "NOT_FOUND"


class UserNotFound(NotFound):
    """No such user."""

    error_code = "USER_NOT_FOUND"


class BoardNotFound(NotFound):
    """No such board (or it was retired)."""

    error_code = "BOARD_NOT_FOUND"


class PeriodNotFound(NotFound):
    """No such period on the board, or it is no longer kept."""

    error_code = "PERIOD_NOT_FOUND"


class MethodNotAllowed(ScoreboardError):
    """405: the route has no such method."""

    status_code = 405
    error_code = "METHOD_NOT_ALLOWED"


class Conflict(ScoreboardError):
    """409: the request contradicts what happened before."""

    status_code = 409


class TokenAlreadyUsed(Conflict):
    """The action token already awarded its score."""

    error_code = "TOKEN_ALREADY_USED"


class ActionAlreadyCompleted(Conflict):
    """The user already completed this actionId."""

    error_code = "ACTION_ALREADY_COMPLETED"


class NotAttested(Conflict):
    """The action needs a trusted server's attestation (`attest`), which it has not given yet; the
    token stays usable: send it again once the game server has attested the action."""

    error_code = "NOT_ATTESTED"


class AlreadyDecided(Conflict):
    """The held award was already approved or rejected: an operator decides it once."""

    error_code = "ALREADY_DECIDED"


class IdempotencyConflict(Conflict):
    """The Idempotency-Key was used before with another body."""

    error_code = "IDEMPOTENCY_CONFLICT"


class BoardExists(Conflict):
    """A board with this id exists or existed."""

    error_code = "BOARD_EXISTS"


class BoardInUse(Conflict):
    """The default board, or a board the action catalog awards on, cannot be retired."""

    error_code = "BOARD_IN_USE"


class PayloadTooLarge(ScoreboardError):
    """413: the body is over the server's limit."""

    status_code = 413
    error_code = "PAYLOAD_TOO_LARGE"


class RateLimited(ScoreboardError):
    """429: a rate limit was hit; `retry_after` is how many seconds to wait (None if not said)."""

    status_code = 429
    error_code = "RATE_LIMITED"

    def __init__(
        self, status: int, code: str, message: str, details: Any = None, *, retry_after: float | None = None
    ) -> None:
        super().__init__(status, code, message, details)
        self.retry_after = retry_after


class ServerError(ScoreboardError):
    """5xx: the server failed; the request may be retried later."""

    status_code = 500


class InternalError(ServerError):
    """500: an error inside the server."""

    error_code = "INTERNAL_ERROR"


class ServiceUnavailable(ServerError):
    """503: a service behind the server (its database, Redis) is down, or it is restarting."""

    status_code = 503
    error_code = "SERVICE_UNAVAILABLE"


def _classes(root: type[ScoreboardError]) -> list[type[ScoreboardError]]:
    found = [root]
    for sub in root.__subclasses__():
        found += _classes(sub)
    return found


_BY_CODE = {cls.error_code: cls for cls in _classes(ScoreboardError) if cls.error_code}
# A code this SDK does not know yet still lands under its status's class.
_BY_STATUS = {cls.status_code: cls for cls in (BadRequest, AuthenticationError, Forbidden, NotFound, Conflict)} | {
    cls.status_code: cls for cls in (MethodNotAllowed, PayloadTooLarge, RateLimited, InternalError, ServiceUnavailable)
}


def error_class(status: int, code: str) -> type[ScoreboardError]:
    """The exception class of a status and code."""
    if code in _BY_CODE:
        return _BY_CODE[code]
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return ServerError if status >= 500 else ScoreboardError


def refusal(code: str, message: str, details: Any = None) -> ScoreboardError:
    """The exception of an error the WebSocket sent (a code without an HTTP status)."""
    cls = error_class(0, code)
    return cls(cls.status_code or 400, code, message, details)


def handshake_refusal(status: int, message: str) -> ScoreboardError:
    """The exception of an HTTP refusal of the WebSocket handshake (its code is not at hand)."""
    cls = error_class(status, "")
    return cls(status, cls.error_code or f"HTTP_{status}", message)


def retry_after_seconds(header: str | None, details: Any) -> float | None:
    """Seconds to wait, from `Retry-After` (whole seconds), else from the details' `retryAfter`."""
    if header is not None and header.strip().isdigit():
        return float(header.strip())
    value = details.get("retryAfter") if isinstance(details, Mapping) else None
    if isinstance(value, int | float) and math.isfinite(value) and value >= 0:
        return float(value)
    return None


def make_error(status: int, code: str, message: str, details: Any, headers: Mapping[str, str]) -> ScoreboardError:
    """The exception of an error answer."""
    cls = error_class(status, code)
    if issubclass(cls, RateLimited):
        return cls(status, code, message, details, retry_after=retry_after_seconds(headers.get("Retry-After"), details))
    return cls(status, code, message, details)
