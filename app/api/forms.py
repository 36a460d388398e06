"""A browser's form as untrusted input: `application/x-www-form-urlencoded` only, each field once,
its percent-escapes decoding to UTF-8, the body within server.max_body_bytes. Anything else is a 400
VALIDATION_ERROR (413 PAYLOAD_TOO_LARGE over the size) before any field is used."""

from __future__ import annotations

import urllib.parse
from typing import TypeVar

from aiohttp import web

from ..decoding import convert_strings
from ..errors import PayloadTooLarge, ValidationFailed

T = TypeVar("T")

FORM = "application/x-www-form-urlencoded"
MAX_FIELDS = 16  # the page's forms have two or three; a flood of fields is refused before it is sorted


async def read_body(request: web.Request) -> bytes:
    """The request's body as sent; 413 PAYLOAD_TOO_LARGE over server.max_body_bytes, 400
    VALIDATION_ERROR when it cannot be read (a `Content-Encoding` it does not decode by, a
    connection lost before its end)."""
    length = request.content_length
    if length is not None and length > request.client_max_size:  # said at once, not once it came
        raise PayloadTooLarge(headers={"Connection": "close"})
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge() from None
    except web.RequestPayloadError as exc:
        # The stream is spent mid-body and aiohttp drops the connection after the answer: the
        # client is told, so that it does not send its next request on it.
        message = str(exc).splitlines()[-1].strip()
        raise ValidationFailed(f"The body could not be read: {message}", headers={"Connection": "close"}) from None
    except OSError:  # ConnectionResetError, or what the transport met: a timeout, a broken pipe
        # The client went away mid-body: nobody hears the answer, but it is the client's doing
        # (a 400 in the access log and metrics), not a fault of the server's.
        raise ValidationFailed(
            "The connection was lost before the whole body came", headers={"Connection": "close"}
        ) from None


async def read_form(request: web.Request, model: type[T]) -> T:
    """The request's form validated into `model`; VALIDATION_ERROR naming what is wrong otherwise."""
    if request.content_type != FORM:
        raise ValidationFailed(f"The body must be a form ({FORM})")
    body = await read_body(request)
    try:
        # Browsers percent-escape everything beyond ASCII, so raw bytes beyond it are refused too.
        pairs = urllib.parse.parse_qsl(
            body.decode("ascii"), keep_blank_values=True, errors="strict", max_num_fields=MAX_FIELDS
        )
    except UnicodeDecodeError:
        raise ValidationFailed("The form is not percent-encoded UTF-8") from None
    except ValueError:
        raise ValidationFailed(f"The form has more than {MAX_FIELDS} fields") from None
    fields = dict(pairs)
    if len(fields) != len(pairs):
        raise ValidationFailed("A field of the form appears more than once")
    return convert_strings(fields, model)
