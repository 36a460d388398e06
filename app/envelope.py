"""The response envelope of the contract, encoded once per response with msgspec."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
from aiohttp import hdrs, web
from multidict import CIMultiDict

from .errors import ApiError
from .models import ErrorBody

_encoder = msgspec.json.Encoder()
JSON = "application/json"
# Copied into each response: cheaper than aiohttp building the header from `content_type=`.
_JSON_HEADERS = CIMultiDict({hdrs.CONTENT_TYPE: JSON})


def ok(data: object, *, status: int = 200) -> web.Response:
    """`{"success": true, "data": ...}`."""
    return web.Response(
        body=b'{"success":true,"data":' + _encoder.encode(data) + b"}", status=status, headers=_JSON_HEADERS
    )


class LastOk:
    """`ok()` that keeps the body of the last object it rendered: an answer served many times
    over (an unchanged top 10) is encoded once. Holding the object keeps its identity unique."""

    def __init__(self) -> None:
        self._data: object = None
        self._body = b""

    def __call__(self, data: object) -> web.Response:
        if data is not self._data:
            self._body = b'{"success":true,"data":' + _encoder.encode(data) + b"}"
            self._data = data
        return web.Response(body=self._body, headers=_JSON_HEADERS)


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
