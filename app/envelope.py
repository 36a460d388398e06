"""The response envelope of the contract, encoded once per response with msgspec."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
from aiohttp import web

from .errors import ApiError
from .models import ErrorBody

_encoder = msgspec.json.Encoder()
JSON = "application/json"


def ok(data: object, *, status: int = 200) -> web.Response:
    """`{"success": true, "data": ...}`."""
    body = b'{"success":true,"data":' + _encoder.encode(data) + b"}"
    return web.Response(body=body, status=status, content_type=JSON)


def failure(
    status: int, code: str, message: str, *, details: object = None, headers: Mapping[str, str] = {}
) -> web.Response:
    """`{"success": false, "error": {code, message, details?}}`."""
    error = ErrorBody(code=code, message=message, details=details)
    body = b'{"success":false,"error":' + _encoder.encode(error) + b"}"
    return web.Response(body=body, status=status, content_type=JSON, headers=headers)


def from_error(exc: ApiError) -> web.Response:
    """Render a domain error."""
    return failure(exc.status, exc.code, exc.message, details=exc.details, headers=exc.headers)
