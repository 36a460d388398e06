"""The order of a board, in one place: score descending (ascending on a lower-is-better board),
then subscore the same way (absent counts as 0), then whoever reached that value first (the lower
write sequence), then user id. Encoded for the memory index and for Redis."""

from __future__ import annotations

from ..records import Standing

SortKey = tuple[int, int, int, str]
SEQ_DIGITS = 19
_INVERT = 10**SEQ_DIGITS - 1
# Scores and subscores stay within ±BOUND: a sorted set's doubles hold every integer there exactly.
BOUND = 2**53
SUBSCORE_DIGITS = len(str(2 * BOUND))  # 17: a subscore shifted by BOUND into 0..2**54
ORDER_DIGITS = SUBSCORE_DIGITS + SEQ_DIGITS  # the fixed-width head of a member, before ":<user id>"


def sort_key(s: Standing, ascending: bool = False) -> SortKey:
    """The memory index's key: ascending order is the board's order."""
    if ascending:
        return (s.score, s.subscore or 0, s.seq, s.user_id)
    return (-s.score, -(s.subscore or 0), s.seq, s.user_id)


def _within(value: int, what: str) -> int:
    if not -BOUND <= value <= BOUND:
        raise ValueError(f"{what} {value} is outside ±2**53, where Redis keeps it exact")
    return value


def zscore(score: int, ascending: bool = False) -> int:
    """The Redis sorted-set score of a board's score. Negated on an ascending board, so that
    both orders read highest first (ZREVRANGE, ZREVRANK)."""
    return -_within(score, "score") if ascending else _within(score, "score")


def score_of(zset_score: float | bytes | str, ascending: bool = False) -> int:
    """The board's score a Redis sorted-set score encodes."""
    value = int(float(zset_score))
    return -value if ascending else value


def head(s: Standing, ascending: bool = False) -> str:
    """The fixed-width head of a member: "<subscore + 2**53><10**19-1-seq>", each zero-padded.
    Redis orders equal scores by member bytes, so in descending order the better subscore comes
    first (negated on an ascending board, as the score is), then the lower write sequence."""
    subscore = _within(s.subscore or 0, "subscore")
    shifted = BOUND + (-subscore if ascending else subscore)
    return f"{shifted:0{SUBSCORE_DIGITS}d}{seq_part(s.seq)}"


def seq_part(seq: int) -> str:
    """A write sequence as a head encodes it (the last SEQ_DIGITS): the later, the lower."""
    if not 0 <= seq <= _INVERT:
        raise ValueError(f"seq {seq} does not fit {SEQ_DIGITS} digits")
    return f"{_INVERT - seq:0{SEQ_DIGITS}d}"


def member(s: Standing, ascending: bool = False) -> str:
    """The Redis sorted-set member of a standing: its `head`, ":", its user id. Equal score,
    subscore and seq (never from the database: a seq is one write's) fall to user ids
    descending, unlike `sort_key`."""
    return f"{head(s, ascending)}:{s.user_id}"


def seq_of(member: str) -> int:
    """The write sequence a member (or its head) encodes."""
    seq: int = _INVERT - int(member[SUBSCORE_DIGITS:ORDER_DIGITS])
    return seq


def subscore_of(member: str, ascending: bool = False) -> int:
    """The subscore a member (or its head) encodes; an absent one reads as 0 here."""
    shifted = int(member[:SUBSCORE_DIGITS]) - BOUND
    return -shifted if ascending else shifted


def user_of(member: str) -> str:
    """The user id a member encodes."""
    return member[ORDER_DIGITS + 1 :]
