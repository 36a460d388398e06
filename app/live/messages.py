"""WebSocket messages of the contract: what clients send, and what the server sends, pre-encoded."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from ..api.fields import BoardId, Rank, Score, Timestamp
from ..api.notice_data import Overtake
from ..decoding import decode_json

# A board's top 10, a window of ranks, the window around the connection's user, and the user's
# own notices (not a board's).
Channel = Literal["leaderboard", "ranks", "around", "notifications"]
BOARD_CHANNELS: frozenset[str] = frozenset({"leaderboard", "ranks", "around"})
MAX_BOARD_SUBSCRIPTIONS = 10  # board subscriptions (every board channel together) one connection may hold
MAX_WINDOW = 50  # ranks in a `ranks` window
MAX_RADIUS = 25  # ranks either side of the user in an `around` window


class Auth(msgspec.Struct, tag="auth", tag_field="type"):
    # No least length: an empty token is a bad token, which closes with 4401 as any other does.
    token: Annotated[str, Meta(max_length=4096)]


class Subscribe(msgspec.Struct, tag="subscribe", tag_field="type", kw_only=True):
    channel: Channel
    board: BoardId | None = None  # None: the default board
    first: Annotated[int, Meta(ge=1, le=2**53)] | None = msgspec.field(default=None, name="from")  # ranks
    last: Annotated[int, Meta(ge=1, le=2**53)] | None = msgspec.field(default=None, name="to")  # ranks
    radius: Annotated[int, Meta(ge=0, le=MAX_RADIUS)] | None = None  # around
    after: Annotated[int, Meta(ge=0, le=2**63 - 1)] | None = None  # notifications: replay those after this id
    max_rate: Annotated[float, Meta(ge=0.1, le=50)] | None = msgspec.field(default=None, name="maxRate")


class Unsubscribe(msgspec.Struct, tag="unsubscribe", tag_field="type"):
    channel: Channel
    board: BoardId | None = None


class Ping(msgspec.Struct, tag="ping", tag_field="type"):
    pass


ClientMessage = Auth | Subscribe | Unsubscribe | Ping


class _Server(msgspec.Struct, tag_field="type", rename="camel", omit_defaults=False, kw_only=True):
    pass


class Connected(_Server, tag="connected"):
    timestamp: Timestamp
    client_id: str
    user_id: str | msgspec.UnsetType = msgspec.UNSET


class Authenticated(_Server, tag="authenticated"):
    user_id: str


class Subscribed(_Server, tag="subscribed"):
    channel: str
    board: str | msgspec.UnsetType = msgspec.UNSET  # none for the user's notifications


class Unsubscribed(_Server, tag="unsubscribed"):
    channel: str
    board: str | msgspec.UnsetType = msgspec.UNSET


class Pong(_Server, tag="pong"):
    timestamp: Timestamp


class LiveEntry(msgspec.Struct, rename="camel", kw_only=True):
    rank: Rank
    user_id: str
    username: str
    score: Score
    subscore: Score | msgspec.UnsetType = msgspec.UNSET  # only when a trusted server gave one, as in REST reads
    change: str


class LiveBoard(msgspec.Struct, rename="camel", kw_only=True):
    board: str
    period: str
    leaderboard: list[LiveEntry]
    updated_at: Timestamp
    total: int  # entries in the period, as `ranks_update` and GET /ranks count them


class LeaderboardUpdate(_Server, tag="leaderboard_update"):
    data: LiveBoard


class EndedBoard(msgspec.Struct, rename="camel", kw_only=True):
    board: str
    period: str
    leaderboard: list[LiveEntry]


class PeriodEnded(_Server, tag="period_ended"):
    """A period of a board ended: its frozen top 10 (a snapshot of the new period follows)."""

    data: EndedBoard


class ScoreChange(msgspec.Struct, rename="camel", kw_only=True):
    board: str
    period: str
    user_id: str
    previous_score: Score
    new_score: Score
    score_increment: Score
    new_rank: Rank
    previous_rank: Rank | None


class ScoreUpdate(_Server, tag="score_update"):
    data: ScoreChange


class RankMove(msgspec.Struct, rename="camel", kw_only=True):
    board: str
    period: str
    user_id: str
    previous_rank: Rank | None
    new_rank: Rank
    score: Score


class RankChange(_Server, tag="rank_change"):
    data: RankMove


class Overtaken(_Server, tag="overtaken"):
    """Another user's write passed the connection's user; `id` is the kept notice's (for `after`)."""

    id: int
    data: Overtake


class RanksEntry(msgspec.Struct, rename="camel", kw_only=True):
    rank: Rank
    user_id: str
    username: str
    score: Score


class RanksWindow(msgspec.Struct, rename="camel", kw_only=True):
    """A window's ranks: all of them (`snapshot`), or those whose occupant or score changed."""

    board: str
    period: str
    channel: str  # "ranks" or "around": which of the connection's windows on the board
    snapshot: bool
    entries: list[RanksEntry]
    total: int


class Refused(msgspec.Struct, kw_only=True):
    """Which subscription an `error` ends: the channel and board of the `subscribe` refused, or of
    one the server ended (its board retired)."""

    channel: str
    board: str | msgspec.UnsetType = msgspec.UNSET  # none for the user's notifications


class ErrorDetail(msgspec.Struct, kw_only=True):
    code: str
    message: str
    details: Refused | msgspec.UnsetType = msgspec.UNSET


class Error(_Server, tag="error"):
    error: ErrorDetail


ServerMessage = (
    Connected
    | Authenticated
    | Subscribed
    | Unsubscribed
    | Pong
    | LeaderboardUpdate
    | PeriodEnded
    | ScoreUpdate
    | RankChange
    | Overtaken
    | Error
)

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(ClientMessage)


def encode(message: ServerMessage) -> bytes:
    """JSON bytes of a server message."""
    return _encoder.encode(message)


def decode(data: str | bytes) -> ClientMessage:
    """Parse a client message; ValidationFailed saying what is wrong otherwise."""
    message: ClientMessage = decode_json(data, _decoder)
    return message


class Sequenced:
    """One board-channel message for many subscriptions, each with its own `data.seq`: the message
    is encoded once and every subscription's seq spliced in front of the rest of `data`."""

    __slots__ = ("_head", "_tail", "kind")

    def __init__(self, kind: str, data: msgspec.Struct) -> None:
        self.kind = kind
        body = _encoder.encode(data)
        self._head = b'{"type":"' + kind.encode() + b'","data":{"seq":'
        self._tail = b"," + body[1:] + b"}" if len(body) > 2 else b"}}"

    def payload(self, seq: int) -> bytes:
        """The whole message with this seq."""
        return self._head + str(seq).encode() + self._tail


def text_frame(payload: bytes) -> bytes:
    """A complete, unmasked WebSocket text frame: built once, written to every subscriber as is."""
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 65536:
        header = bytes((0x81, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + size.to_bytes(8, "big")
    return header + payload
