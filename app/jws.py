"""Compact JWS with HS256, the one algorithm this service signs and accepts (RFC 7515, 7519).

Written here rather than taken from PyJWT: its per-call option handling, key preparation and
stdlib JSON cost more than the rest of an award, and a verifier that knows only HS256 has no
algorithm to confuse."""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import re
from collections.abc import Callable
from typing import TypeVar

import msgspec

from .decoding import UNREADABLE

T = TypeVar("T")


class JwsError(Exception):
    """Malformed, not HS256, or the signature does not verify."""


class Header(msgspec.Struct, frozen=True):
    """The protected header; other members are ignored."""

    alg: str
    typ: str | None = None
    kid: str | None = None
    crit: list[str] | None = None


_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")  # base64url without padding, nothing else
_decode_header = msgspec.json.Decoder(Header).decode
_encode = msgspec.json.Encoder().encode


def _b64encode(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _b64decode(segment: str) -> bytes:
    # The stdlib decoder skips characters outside the alphabet; a token must not contain any.
    if not _SEGMENT.fullmatch(segment):
        raise JwsError("not base64url")
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise JwsError("not base64url") from None


@functools.lru_cache(maxsize=64)
def _header(segment: str) -> Header:
    # A service sees a handful of distinct headers (one per key and token type): each is
    # decoded once. A failure raises and is not remembered.
    try:
        return _decode_header(_b64decode(segment))
    except UNREADABLE:
        raise JwsError("bad header") from None


def sign(claims: object, key: bytes, *, typ: str | None = None, kid: str | None = None) -> str:
    """`claims` (anything msgspec encodes to a JSON object) as a signed compact JWS."""
    header: dict[str, str] = {"alg": "HS256"}
    if typ is not None:
        header["typ"] = typ
    if kid is not None:
        header["kid"] = kid
    signing_input = _b64encode(_encode(header)) + b"." + _b64encode(_encode(claims))
    signature = hmac.digest(key, signing_input, "sha256")
    return (signing_input + b"." + _b64encode(signature)).decode("ascii")


def verify(token: str, key_for: Callable[[Header], bytes | None]) -> tuple[Header, bytes]:
    """The header and the raw JSON payload of a genuine token; JwsError otherwise.
    `key_for` picks the key from the header, or None to refuse it."""
    if not token.isascii():  # every segment is base64url; the checks below may then encode as ASCII
        raise JwsError("not base64url")
    parts = token.split(".")
    if len(parts) != 3:
        raise JwsError("not a compact JWS")
    head, body, signature = parts
    header = _header(head)
    if header.alg != "HS256" or header.crit is not None:
        raise JwsError("unsupported algorithm or critical extension")
    key = key_for(header)
    if key is None:
        raise JwsError("no key for this token")
    expected = hmac.digest(key, f"{head}.{body}".encode("ascii"), "sha256")  # one-shot, in C
    # Compared as text: only the canonical spelling verifies. Decoding first would accept the
    # four spellings of the last character, whose two low bits base64 ignores.
    if not hmac.compare_digest(_b64encode(expected), signature.encode("ascii")):
        raise JwsError("bad signature")
    return header, _b64decode(body)


def verify_claims(
    token: str, key_for: Callable[[Header], bytes | None], claims: msgspec.json.Decoder[T]
) -> tuple[Header, T]:
    """`verify`, then the payload decoded as `claims`; JwsError when it is not such claims."""
    header, payload = verify(token, key_for)
    try:
        return header, claims.decode(payload)
    except UNREADABLE:
        raise JwsError("bad claims") from None
