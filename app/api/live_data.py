"""The query strings and headers of the live side: the live page, the WebSocket and a board's event stream."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from ..errors import CLOSE_UNAUTHORIZED
from .fields import _Model

LIVE_TOKEN_HELP = f"A user JWT, checked before anything is sent (invalid: closed with {CLOSE_UNAUTHORIZED})"


class PageQuery(_Model):
    board: (
        Annotated[
            str,
            Meta(
                description="The board shown (its id); any other value shows the default board with a notice",
                examples=["weekly"],
            ),
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET


class LiveQuery(_Model):
    token: Annotated[str, Meta(description=LIVE_TOKEN_HELP)] | msgspec.UnsetType = msgspec.UNSET


class StreamQuery(_Model):
    max_rate: (
        Annotated[float, Meta(ge=0.1, le=50, description="At most this many events a second; the latest state wins")]
        | None
    ) = None


class StreamHeaders(msgspec.Struct, kw_only=True):
    """The headers an event stream reads."""

    last_event_id: (
        Annotated[
            int,
            Meta(
                ge=0,
                le=2**53,
                description="The `id` of the last event a reconnecting client saw: the stream goes on from "
                "the next id, with a fresh snapshot",
            ),
        ]
        | None
    ) = msgspec.field(default=None, name="Last-Event-ID")
