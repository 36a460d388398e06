"""The contract's error codes as named exceptions; the request edge renders them in the envelope."""

from __future__ import annotations

from collections.abc import Mapping


class ApiError(Exception):
    """A failure the client is told about: HTTP status, contract code, message."""

    status = 500
    code = "INTERNAL_ERROR"
    message = "Internal server error"

    def __init__(
        self,
        message: str | None = None,
        *,
        details: object = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message
        self.details = details
        self.headers = dict(headers or {})


BEARER_CHALLENGE = 'Bearer realm="scoreboard"'  # RFC 9110: a 401 names the scheme that would do


class Unauthorized(ApiError):
    """No valid credentials. `error` is RFC 6750's code in the challenge: `invalid_token` for a
    credential that was sent and fails, None where none was sent (the client may not know it needs one)."""

    status, code, message = 401, "UNAUTHORIZED", "A valid bearer token is required"

    def __init__(self, message: str | None = None, *, error: str | None = "invalid_token") -> None:
        challenge = BEARER_CHALLENGE if error is None else f'{BEARER_CHALLENGE}, error="{error}"'
        super().__init__(message, headers={"WWW-Authenticate": challenge})


class InvalidToken(ApiError):
    status, code, message = 401, "INVALID_TOKEN", "Action token is invalid"


class TokenExpired(ApiError):
    status, code, message = 401, "TOKEN_EXPIRED", "Action token has expired"


class Forbidden(ApiError):
    status, code, message = 403, "FORBIDDEN", "userId does not match the authenticated user"


class Disqualified(ApiError):
    status, code, message = 403, "DISQUALIFIED", "This user is disqualified until an operator reinstates them"


class TokenAlreadyUsed(ApiError):
    status, code, message = 409, "TOKEN_ALREADY_USED", "This action token has already been used"


class ActionAlreadyCompleted(ApiError):
    status, code, message = 409, "ACTION_ALREADY_COMPLETED", "This action was already completed"


class NotAttested(ApiError):
    status, code, message = 409, "NOT_ATTESTED", "This action needs a trusted server's attestation first"


class AlreadyDecided(ApiError):
    status, code, message = 409, "ALREADY_DECIDED", "This held award was already approved or rejected"


class InvalidAction(ApiError):
    status, code, message = 400, "INVALID_ACTION", "Unknown actionType"


class ActionMismatch(ApiError):
    status, code, message = 400, "ACTION_MISMATCH", "actionId does not match the action token"


class ActionTooFast(ApiError):
    status, code, message = 400, "ACTION_TOO_FAST", "Action completed too quickly"


class ValidationFailed(ApiError):
    status, code, message = 400, "VALIDATION_ERROR", "Request is not valid"


class UserNotFound(ApiError):
    status, code, message = 404, "USER_NOT_FOUND", "No such user"


class NotFound(ApiError):
    status, code, message = 404, "NOT_FOUND", "Not found"


class MethodNotAllowed(ApiError):
    status, code, message = 405, "METHOD_NOT_ALLOWED", "Method not allowed"


class PayloadTooLarge(ApiError):
    status, code, message = 413, "PAYLOAD_TOO_LARGE", "Request body is too large"


class RateLimited(ApiError):
    status, code, message = 429, "RATE_LIMITED", "Too many requests"

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)}, details={"retryAfter": retry_after})


class ServiceUnavailable(ApiError):
    status, code, message = 503, "SERVICE_UNAVAILABLE", "A backing service is unavailable"


class PeriodEnded(ApiError):
    """A write's period ended before its transaction began: the service stamps it again in the
    new one (a client sees this only if the period ended again meanwhile)."""

    status, code, message = 503, "SERVICE_UNAVAILABLE", "The period ended while the write waited; try again"


class BoardNotFound(ApiError):
    status, code, message = 404, "BOARD_NOT_FOUND", "No such board"


class PeriodNotFound(ApiError):
    status, code, message = 404, "PERIOD_NOT_FOUND", "No such period on this board, or it is no longer kept"


class IdempotencyConflict(ApiError):
    status, code, message = 409, "IDEMPOTENCY_CONFLICT", "This Idempotency-Key was used with another request"


class BoardExists(ApiError):
    status, code, message = 409, "BOARD_EXISTS", "A board with this id exists or existed"


class BoardInUse(ApiError):
    status, code, message = 409, "BOARD_IN_USE", "The action catalog or the default board needs this board as it is"


# Codes for aiohttp's own HTTP errors (unknown route, wrong method, body too large, ...): the
# classes above name them, so that the route table can document what aiohttp answers.
HTTP_CODES: dict[int, str] = {
    error.status: error.code
    for error in (
        ValidationFailed,
        Unauthorized,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        PayloadTooLarge,
        RateLimited,
        ServiceUnavailable,
    )
}


# WebSocket close codes: the contract's errors of a live connection after the upgrade, and 1012
# (RFC 6455's registry: "service restart") when the process drains; the contract names no code for that.
CLOSE_MESSAGE_TOO_BIG = 1009  # a client message over the limit (aiohttp closes with it)
CLOSE_SERVICE_RESTART = 1012  # the process is draining (SIGTERM, SIGINT): reconnect at once, with jitter
CLOSE_TRY_AGAIN_LATER = 1013  # the client fell too far behind
CLOSE_UNAUTHORIZED = 4401  # no valid token, or the token expired
CLOSE_TOO_MANY = 4429  # one connection over the per-user limit
