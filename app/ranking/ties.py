"""The order of a board, in one place: score descending (ascending on a lower-is-better board),
then subscore the same way (absent counts as 0), then whoever reached that value first (the lower
write sequence), then user id. Encoded for the memory index and for Redis."""

from __future__ import annotations

from ..records import Standing

SortKey = tuple[int, int, int, str]
SEQ_DIGITS = 19
_INVERT = 10**SEQ_DIGITS - 1


def sort_key(s: Standing, ascending: bool = False) -> SortKey:
    """The memory index's key: ascending order is the board's order."""
    if ascending:
        return (s.score, s.subscore or 0, s.seq, s.user_id)
    return (-s.score, -(s.subscore or 0), s.seq, s.user_id)


def member(seq: int, user_id: str) -> str:
    """The Redis sorted-set member of a user whose current score was reached by award `seq`.
    Redis orders equal scores by member, so "<10**19-1-seq, zero-padded>:<user id>" puts, in
    descending order, the lower award sequence first. Equal score and seq (never from the
    database: a seq is one award's) fall to user ids descending, unlike `sort_key`."""
    return f"{_INVERT - seq:0{SEQ_DIGITS}d}:{user_id}"


def seq_of(member: bytes) -> int:
    """The award sequence a Redis member encodes."""
    seq: int = _INVERT - int(member[:SEQ_DIGITS])
    return seq


def user_of(member: str) -> str:
    """The user id a Redis member encodes."""
    return member[SEQ_DIGITS + 1 :]
