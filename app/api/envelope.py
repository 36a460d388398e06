"""The response envelope of the contract, encoded once per response with msgspec."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from typing import Any, Literal

import msgspec
from aiohttp import hdrs, web
from aiohttp.helpers import ETAG_ANY, ETag
from multidict import CIMultiDict

from ..errors import BEARER_CHALLENGE, ApiError
from .fields import _Model

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


ETAG_PATTERN = r'^"[0-9a-f]{20}"$'  # what etag_of gives, for the OpenAPI document
PUBLIC_CACHE_CONTROL_PATTERN = r"^(public, max-age=[0-9]+|no-cache)$"  # what public_cache_control gives
PRIVATE_CACHE_CONTROL = "private, no-store"  # a user's own view: kept by no cache


def etag_of(body: bytes) -> str:
    """A strong entity tag of these exact bytes (quoted, as the `ETag` header carries it): equal
    bodies get equal tags in every process, so a CDN in front of several keeps one copy."""
    return '"' + hashlib.blake2b(body, digest_size=10).hexdigest() + '"'


def public_cache_control(max_age_seconds: int) -> str:
    """`Cache-Control` of a public read: reusable for `max_age_seconds` by browsers and shared
    caches; 0: stored but revalidated before every reuse (`no-cache`)."""
    return f"public, max-age={max_age_seconds}" if max_age_seconds > 0 else "no-cache"


def matches(if_none_match: tuple[ETag, ...] | None, etag: str) -> bool:
    """Whether `If-None-Match` names this tag (compared weakly, as RFC 9110 says for it) or is `*`."""
    if not if_none_match:
        return False
    value = etag[1:-1]
    return any(tag.value in (value, ETAG_ANY) for tag in if_none_match)


@functools.lru_cache(maxsize=64)
def _cache_headers(etag: str, cache_control: str, json: bool) -> CIMultiDict[str]:
    # Made once per answer and copied into each response (aiohttp copies what it is given).
    headers = CIMultiDict({hdrs.ETAG: etag, hdrs.CACHE_CONTROL: cache_control})
    if json:
        headers[hdrs.CONTENT_TYPE] = JSON
    return headers


def ok_cacheable(body: bytes, etag: str, cache_control: str) -> web.Response:
    """A 200 of an encoded answer that caches may keep, with its entity tag."""
    return web.Response(body=body, headers=_cache_headers(etag, cache_control, True))


def not_modified(etag: str, cache_control: str) -> web.Response:
    """304: the copy the client holds (named by `etag`) is current; no body."""
    return web.Response(status=304, headers=_cache_headers(etag, cache_control, False))


class ErrorBody(_Model, omit_defaults=True):
    code: str
    message: str
    details: Any = None


class ErrorEnvelope(msgspec.Struct, kw_only=True):
    """Every failure: `{"success": false, "error": {...}}`."""

    success: Literal[False]
    error: ErrorBody


def failure(
    status: int, code: str, message: str, *, details: object = None, headers: Mapping[str, str] = {}
) -> web.Response:
    """`{"success": false, "error": {code, message, details?}}`."""
    error = ErrorBody(code=code, message=message, details=details)
    try:
        encoded = _encoder.encode(error)
    except UnicodeEncodeError:
        # Text from the request that was not UTF-8 (aiohttp keeps a header's other bytes as lone
        # surrogates) cannot be JSON: it is shown as U+FFFD rather than failing the refusal.
        encoded = _encoder.encode(_readable(msgspec.to_builtins(error)))
    body = b'{"success":false,"error":' + encoded + b"}"
    response = web.Response(body=body, status=status, content_type=JSON, headers=headers)
    if status == 401:
        response.headers.setdefault(hdrs.WWW_AUTHENTICATE, BEARER_CHALLENGE)
    return response


def _readable(value: Any) -> Any:
    if isinstance(value, str):
        try:  # the request's bytes again, where aiohttp kept them as surrogates
            raw = value.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # a lone surrogate of another kind
            raw = value.encode("utf-8", "surrogatepass")
        return raw.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {_readable(k): _readable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_readable(v) for v in value]
    return value


def from_error(exc: ApiError) -> web.Response:
    """Render a domain error in the envelope, with the headers it asks for (`carrying`)."""
    return carrying(exc, failure(exc.status, exc.code, exc.message, details=exc.details))


def carrying(exc: ApiError, response: web.Response) -> web.Response:
    """`response` (an envelope or a page) with `exc`'s headers: a challenge, `Retry-After`. One that
    says `Connection: close` (a body refused unread or half read) ends its connection: aiohttp
    decides by the request, not by that header."""
    response.headers.update(exc.headers)
    if exc.headers.get("Connection") == "close":
        response.force_close()
    return response
