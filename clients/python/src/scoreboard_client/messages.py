"""The WebSocket's messages as the contract defines them (the REST models are generated, in
models.py). The server's own structs (app/live/messages.py) must fit these:
tests/test_sdk_models.py compares them."""

from __future__ import annotations

from typing import Any

import msgspec


class _Part(msgspec.Struct, rename="camel", kw_only=True):
    pass


class _Message(msgspec.Struct, tag_field="type", rename="camel", kw_only=True):
    pass


class Connected(_Message, tag="connected"):
    """The connection is accepted (`user_id` when it was authenticated on the URL)."""

    timestamp: str
    client_id: str
    user_id: str | None = None


class Authenticated(_Message, tag="authenticated"):
    """The `auth` message was accepted."""

    user_id: str


class Subscribed(_Message, tag="subscribed"):
    """A subscription is on; its snapshot follows."""

    channel: str
    board: str | None = None


class Unsubscribed(_Message, tag="unsubscribed"):
    """A subscription is off."""

    channel: str
    board: str | None = None


class Pong(_Message, tag="pong"):
    """The answer to `ping`."""

    timestamp: str


class LiveEntry(_Part):
    """A place in the top 10; `change` is the score gained since the previous update (`"+100"`)."""

    rank: int
    user_id: str
    username: str
    score: int
    change: str
    subscore: int | None = None  # only when a trusted server gave one


class LiveBoard(_Part):
    """A board's top 10 now and its number of entries (`total`; None from servers that do not send
    it); `seq` counts this subscription's messages."""

    board: str
    period: str
    leaderboard: list[LiveEntry]
    updated_at: str
    seq: int | None = None
    total: int | None = None


class LeaderboardUpdate(_Message, tag="leaderboard_update"):
    """The board's top 10 changed (or a snapshot after subscribing)."""

    data: LiveBoard


class EndedBoard(_Part):
    """A period's frozen top 10."""

    board: str
    period: str
    leaderboard: list[LiveEntry]
    seq: int | None = None


class PeriodEnded(_Message, tag="period_ended"):
    """A period of the board ended; a snapshot of the new period follows."""

    data: EndedBoard


class ScoreChange(_Part):
    """What an award did to the connection's user on one board."""

    board: str
    period: str
    user_id: str
    previous_score: int
    new_score: int
    score_increment: int
    new_rank: int
    previous_rank: int | None


class ScoreUpdate(_Message, tag="score_update"):
    """The connection's user was awarded."""

    data: ScoreChange


class RankMove(_Part):
    """The connection's user moved on one board."""

    board: str
    period: str
    user_id: str
    previous_rank: int | None
    new_rank: int
    score: int


class RankChange(_Message, tag="rank_change"):
    """The connection's user changed rank."""

    data: RankMove


class WindowEntry(_Part):
    """An entry of a ranks window."""

    rank: int
    user_id: str
    username: str
    score: int


class RanksWindow(_Part):
    """A snapshot of a window, or the ranks in it whose occupant or score changed (`total`: the
    board's size)."""

    board: str
    period: str
    seq: int
    snapshot: bool
    entries: list[WindowEntry]
    total: int | None = None
    channel: str | None = None  # "ranks" or "around": which of the connection's windows


class RanksUpdate(_Message, tag="ranks_update"):
    """A `ranks` or `around` window's snapshot or change: applied in order, they give the window."""

    data: RanksWindow


class Passer(_Part):
    """The user who passed."""

    user_id: str
    username: str
    score: int


class Overtake(_Part):
    """Who passed the user on a board, and the user's ranks before and after."""

    board: str
    period: str
    user_id: str
    by: Passer
    previous_rank: int
    new_rank: int


class Overtaken(_Message, tag="overtaken"):
    """Another user's award or trusted write passed the connection's user. `id`: the kept notice's
    (a stream that reconnects replays only those after it)."""

    data: Overtake
    id: int | None = None


class Subscription(_Part):
    """The subscription an `error` is about: the one a `subscribe` asked for, or one the server ended."""

    channel: str
    board: str | None = None  # none for notifications


class ErrorDetail(_Part):
    """The contract's error code and message; `details` names the subscription it refuses or ends."""

    code: str
    message: str
    details: Subscription | None = None


class LiveError(_Message, tag="error"):
    """The server refused a message, or ended a subscription (its board retired); the connection goes on."""

    error: ErrorDetail


class UnknownMessage(msgspec.Struct):
    """A message type this SDK does not know (a newer server's): its type and the whole message."""

    type: str
    message: dict[str, Any]


LiveMessage = (
    Connected
    | Authenticated
    | Subscribed
    | Unsubscribed
    | Pong
    | LeaderboardUpdate
    | PeriodEnded
    | ScoreUpdate
    | RankChange
    | RanksUpdate
    | Overtaken
    | LiveError
    | UnknownMessage
)
KNOWN: tuple[type[_Message], ...] = (
    Connected,
    Authenticated,
    Subscribed,
    Unsubscribed,
    Pong,
    LeaderboardUpdate,
    PeriodEnded,
    ScoreUpdate,
    RankChange,
    RanksUpdate,
    Overtaken,
    LiveError,
)


class _Kind(msgspec.Struct):
    type: str


_kind = msgspec.json.Decoder(_Kind)
_any = msgspec.json.Decoder(dict[str, Any])
_by_tag: dict[Any, msgspec.json.Decoder[Any]] = {cls.__struct_config__.tag: msgspec.json.Decoder(cls) for cls in KNOWN}


def decode_message(data: str | bytes) -> LiveMessage:
    """A server message, typed; an `UnknownMessage` for a type this SDK does not know."""
    kind = _kind.decode(data).type
    decoder = _by_tag.get(kind)
    if decoder is None:
        return UnknownMessage(type=kind, message=_any.decode(data))
    message: LiveMessage = decoder.decode(data)
    return message
