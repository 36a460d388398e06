"""The records the store's statements answer, made from their rows (a tuple, or the driver's own
record): held awards, users, notices, standings and awards. Shared by SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import msgspec

from ..records import Award, AwardClaim, BoardPeriod, EntryChange, HeldAward, Notice, NoticeDraft, Standing, UserRecord

_board_periods = msgspec.json.Decoder(tuple[BoardPeriod, ...])
_rule_names = msgspec.json.Decoder(tuple[str, ...])


def board_periods_text(boards: tuple[BoardPeriod, ...]) -> str:
    """The board periods of a held award, as kept."""
    return msgspec.json.encode(boards).decode()


def held_award(row: Any) -> HeldAward:
    """A held award from its row (HELD_COLUMNS)."""
    held_id, award_id, user_id, action_type, action_id, score, boards, created, status, by, reason, decided, rules = row
    return HeldAward(
        id=held_id,
        award_id=award_id,
        user_id=user_id,
        action_type=action_type,
        action_id=action_id,
        score=score,
        boards=_board_periods.decode(boards),
        created_ms=created,
        status=status,
        decided_by=by,
        reason=reason,
        decided_ms=decided,
        rules=_rule_names.decode(rules),
    )


def user_record(row: Any) -> UserRecord:
    """A row of USER (a tuple, or the driver's own record)."""
    return UserRecord(user_id=row[0], username=row[1])


def notice(draft: NoticeDraft, notice_id: int, created_ms: int) -> Notice:
    """A draft as kept under its id."""
    return Notice(id=notice_id, user_id=draft.user_id, type=draft.type, data=draft.data, created_ms=created_ms)


def kept_notice(row: Any) -> Notice:
    """A notice from its row (id, user_id, type, data, created_at)."""
    return Notice(id=row[0], user_id=row[1], type=row[2], data=row[3], created_ms=row[4])


def standing(row: Any) -> Standing:
    """A row of STANDINGS."""
    return Standing(
        user_id=row[0],
        username=row[1],
        score=row[2],
        seq=row[3],
        updated_ms=row[4],
        subscore=row[5],
        metadata=row[6],
    )


def awarded(claim: AwardClaim, increment: int, changes: list[EntryChange]) -> Award:
    """The award a claim made, its numbers the first board's."""
    first = changes[0]
    return Award(
        user_id=claim.user_id,
        username=claim.username,
        action_type=claim.action_type,
        action_id=claim.action_id,
        previous_score=first.previous_score or 0,
        new_score=first.new_score,
        score_increment=increment,
        awarded_ms=claim.now_ms,
        changes=changes,
    )


def awarded_at_once(claims: list[AwardClaim], rows: list[Any]) -> list[Award | None]:
    """The awards a call of PostgreSQL's award function answered, claim by claim (a row each per
    board, or one with no award for a claim that takes the steps: None)."""
    answers: list[Award | None] = []
    at = 0
    for index, claim in enumerate(claims, start=1):
        own = rows[at : at + len(claim.boards)]
        if own[0][1] is None:
            answers.append(None)
            at += 1
            continue
        at += len(claim.boards)
        assert all(r[0] == index for r in own)  # the function answers claim by claim
        changes = [
            EntryChange(where=where, previous_score=r[4], new_score=r[5], subscore=r[6], metadata=r[7], seq=r[3])
            for where, r in zip(claim.boards, own, strict=True)
        ]
        answers.append(awarded(claim, own[0][2], changes))
    return answers
