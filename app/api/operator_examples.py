"""Examples of the operators' operations: boards made at run time, held awards, moderation and the operator page."""

from __future__ import annotations

import msgspec

from .admin_models import DecisionForm, SignInForm, SignOutForm
from .award_data import AwardBoard
from .board_data import BoardChange, BoardCreate, BoardDetail, BoardRetire, PeriodData, RetiredData
from .examples import EARLIER, ISSUED_JWT, NOW, Example
from .held_data import DecisionRequest, HeldAwardData, HeldBoard, HeldListData
from .moderation_data import (
    ActData,
    AdjustedData,
    AdjustRequest,
    HistoryEntry,
    ModerationRequest,
    RemovedData,
    UserHistoryData,
    UserModerationData,
    WipedData,
)

# The operators' story: a board made for a season, and mallory, whose awards are held and who is
# disqualified, corrected and cleaned off a period.
_SEASON = BoardDetail(
    id="season-1",
    title="Season 1",
    order="desc",
    operator="incr",
    reset="monthly",
    timezone="America/New_York",
    keep_periods=3,
    format="number",
    period=PeriodData(id="2026-12", starts_at="2026-12-01T05:00:00.000Z", ends_at="2027-01-01T05:00:00.000Z"),
    entries=0,
)
CREATE_BOARD = Example(
    request=BoardCreate(
        id="season-1",
        title="Season 1",
        reset="monthly",
        timezone="America/New_York",
        keep_periods=3,
        reason="Season 1 starts in January",
    ),
    data=_SEASON,
)
CHANGE_BOARD = Example(
    request=BoardChange(title="Season 1 (finals)", reason="The finals are on"),
    data=msgspec.structs.replace(_SEASON, title="Season 1 (finals)"),
)
RETIRE_BOARD = Example(request=BoardRetire(reason="Season 1 is over"), data=RetiredData(board="season-1", retired=True))
_HELD = HeldAwardData(
    id=7,
    user_id="mallory",
    action_type="OPEN_CHEST",
    action_id="chest-21",
    score=10,
    boards=[HeldBoard(board="global", period="all")],
    status="pending",
    created_at=EARLIER,
    decided_by=None,
    reason=None,
    decided_at=None,
    landed=[],
    rules=["hold_over_per_hour", "velocity"],
)
HELD = Example(data=HeldListData(held=[_HELD], next_after=None))
APPROVE = Example(
    request=DecisionRequest(reason="Verified the replay"),
    data=msgspec.structs.replace(
        _HELD,
        status="approved",
        decided_by="ops-1",
        reason="Verified the replay",
        decided_at=NOW,
        landed=[AwardBoard(board="global", period="all", previous_score=200, new_score=210, rank=3)],
    ),
)
REJECT = Example(
    request=DecisionRequest(reason="21 chests in 4 minutes"),
    data=msgspec.structs.replace(
        _HELD, id=8, status="rejected", decided_by="ops-1", reason="21 chests in 4 minutes", decided_at=NOW
    ),
)
_DISQUALIFIED = ActData(
    id=12,
    action="disqualify",
    operator="ops-1",
    reason="Speed hack confirmed from replays",
    user_id="mallory",
    board=None,
    period=None,
    amount=None,
    details=None,
    created_at=NOW,
)
DISQUALIFY = Example(
    request=ModerationRequest(reason="Speed hack confirmed from replays"),
    data=UserModerationData(user_id="mallory", disqualified=True, act=_DISQUALIFIED),
)
REINSTATE = Example(
    request=ModerationRequest(reason="Appeal upheld"),
    data=UserModerationData(
        user_id="mallory",
        disqualified=False,
        act=msgspec.structs.replace(_DISQUALIFIED, id=13, action="reinstate", reason="Appeal upheld"),
    ),
)
_ADJUSTED = msgspec.structs.replace(
    _DISQUALIFIED,
    id=14,
    action="adjust",
    reason="Refund of a duplicated quest reward",
    board="weekly",
    period="2026-W49",
    amount=-250,
)
ADJUST = Example(
    request=AdjustRequest(delta=-250, reason="Refund of a duplicated quest reward"),
    data=AdjustedData(
        board="weekly",
        period="2026-W49",
        user_id="mallory",
        previous_score=1200,
        new_score=950,
        rank=4,
        act=_ADJUSTED,
    ),
)
_REMOVED = msgspec.structs.replace(
    _DISQUALIFIED,
    id=15,
    action="remove",
    reason="Exploited the lap-skip bug",
    board="weekly",
    period="2026-W49",
    amount=950,
    details={"userId": "mallory", "score": 950, "subscore": None, "seq": 4711, "metadata": None},
)
REMOVE_ENTRY = Example(
    request=ModerationRequest(reason="Exploited the lap-skip bug"),
    data=RemovedData(board="weekly", period="2026-W49", user_id="mallory", removed_score=950, act=_REMOVED),
)
_WIPED = msgspec.structs.replace(
    _DISQUALIFIED,
    id=16,
    action="wipe",
    reason="Scores of the broken build",
    user_id=None,
    board="weekly",
    period="2026-W48",
    amount=1,
    details={"removed": [{"userId": "alice", "score": 600, "subscore": None, "seq": 4100, "metadata": None}]},
)
WIPE = Example(
    request=ModerationRequest(reason="Scores of the broken build"),
    data=WipedData(board="weekly", period="2026-W48", removed=1, act=_WIPED),
)
USER_HISTORY = Example(
    data=UserHistoryData(
        user_id="mallory",
        username="Mallory",
        disqualified=True,
        disqualified_at=NOW,
        history=[
            HistoryEntry(
                id=4712,
                kind="correction",
                board="weekly",
                period="2026-W49",
                action_type=None,
                action_id=None,
                service=None,
                act_id=14,
                value=-250,
                subscore=None,
                previous_score=1200,
                new_score=950,
                created_at=NOW,
            ),
            HistoryEntry(
                id=4711,
                kind="award",
                board="weekly",
                period="2026-W49",
                action_type="COMPLETE_QUEST",
                action_id="quest-9",
                service=None,
                act_id=None,
                value=100,
                subscore=None,
                previous_score=1100,
                new_score=1200,
                created_at=EARLIER,
            ),
        ],
        next_after=None,
        acts=[_ADJUSTED, _DISQUALIFIED],
    )
)
ADMIN_HOME = Example(
    text='<!DOCTYPE html>\n<html lang="en">… Boards: a table of every board\'s settings … Held awards: each pending '
    "one with its user, action, score, boards and time, and an approve and a reject form …</html>\n"
)
ADMIN_USER = Example(
    text='<!DOCTYPE html>\n<html lang="en">… alice: entries per board and period, awards, score changes, held '
    "awards …</html>\n"
)
ADMIN_SIGN_IN = Example(request=SignInForm(token=ISSUED_JWT))
ADMIN_SIGN_OUT = Example(request=SignOutForm(csrf="3f" * 32))
ADMIN_DECISION = Example(request=DecisionForm(csrf="3f" * 32, reason="Verified the replay"))
