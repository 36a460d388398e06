"""The response envelope of the contract, encoded once per response with msgspec."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
from aiohttp import hdrs, web
from multidict import CIMultiDict

from ..errors import ApiError
from .models import ErrorBody

_encoder = msgspec.json.Encoder()
JSON = "application/json"
# Copied into each response: cheaper than aiohttp building the header from `content_type=`.
_JSON_HEADERS = CIMultiDict({hdrs.CONTENT_TYPE: JSON})


def ok_body(data: object) -> bytes:
    """The encoded body `{"success": true, "data": ...}`."""
    return b'{"success":true,"data":' + _encoder.encode(data) + b"}"


def ok(data: object, *, status: int = 200) -> web.Response:
    """`{"success": true, "data": ...}`."""
    return web.Response(body=ok_body(data), status=status, headers=_JSON_HEADERS)


def ok_encoded(body: bytes) -> web.Response:
    """A 200 whose body `ok_body` encoded before (a kept answer)."""
    return web.Response(body=body, headers=_JSON_HEADERS)


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
