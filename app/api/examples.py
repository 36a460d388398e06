"""Examples of each operation's request and answer, as the OpenAPI document and Swagger UI show them.

Built from the models themselves, so that an example cannot name a field the API does not have; the
tests check each one against its schema too. One story runs through them: alice and bob on the
`global`, `weekly` and `trial` boards of the demo (the operators' side of it: operator_examples)."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from .award_data import (
    ActionEntry,
    ActionsData,
    AwardBoard,
    BoardEntry,
    CountWindowData,
    InitializeData,
    InitializeRequest,
    TopData,
    UpdateData,
    UpdateRequest,
    UserScoreData,
    VelocityData,
)
from .board_data import (
    AroundData,
    BoardData,
    BoardDetail,
    BoardsData,
    BoardTopData,
    LookupData,
    LookupRequest,
    PeriodData,
    PeriodEntry,
    PeriodsData,
    RankedEntry,
    RanksData,
    UserBoard,
    UserBoardsData,
)
from .held_data import HeldData
from .notice_data import Notification, NotificationsData, Overtake, Passer
from .personal_data import (
    ErasedData,
    ExportData,
    ExportedAttestation,
    ExportedAward,
    ExportedChange,
    ExportedCompletion,
    ExportedEntry,
    ExportedToken,
    ExportedUser,
)
from .site_data import HealthData
from .trusted_data import AttestData, AttestRequest, ScoreWriteData, ScoreWriteRequest


@dataclass(frozen=True, kw_only=True)
class Example:
    """An operation's example request body and success: `data` of the envelope, or `text` for an
    answer that is not JSON."""

    request: object = None
    data: object = None
    text: str | None = None
    accepted: object = None  # `data` of a 202, for an operation that may answer one


NOW = "2026-12-03T10:30:00.000Z"
EARLIER = "2026-12-03T10:29:12.000Z"
# An action token as initialize issues it (a JWT); the signature here is no real one.
ISSUED_JWT = (
    "eyJhbGciOiJIUzI1NiIsImtpZCI6ImEwIiwidHlwIjoic2ItYWN0aW9uK2p3dCJ9."
    "eyJ1c2VySWQiOiJhbGljZSIsImFjdGlvblR5cGUiOiJDT01QTEVURV9RVUVTVCIsImFjdGlvbklkIjoicXVlc3QtMSJ9."
    "3q2-7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
)

_ALL_TIME = PeriodData(id="all", starts_at=None, ends_at=None)
_WEEK = PeriodData(id="2026-W49", starts_at="2026-11-30T00:00:00.000Z", ends_at="2026-12-07T00:00:00.000Z")
_GLOBAL = BoardData(
    id="global",
    title="All time",
    order="desc",
    operator="incr",
    reset="never",
    timezone="UTC",
    keep_periods=12,
    format="number",
    period=_ALL_TIME,
)
_WEEKLY = msgspec.structs.replace(_GLOBAL, id="weekly", title="This week", reset="weekly", keep_periods=4, period=_WEEK)
_TRIAL = msgspec.structs.replace(
    _GLOBAL, id="trial", title="Time trial", order="asc", operator="best", format="duration_ms"
)
_TOP = [
    BoardEntry(rank=1, user_id="alice", username="Alice", score=600, last_updated=NOW),
    BoardEntry(rank=2, user_id="bob", username="Bob", score=500, last_updated=EARLIER),
]
_WEEKLY_TOP = [
    RankedEntry(rank=1, user_id="alice", username="Alice", score=600, last_updated=NOW),
    RankedEntry(rank=2, user_id="bob", username="Bob", score=500, last_updated=EARLIER),
]
_TRIAL_TOP = [
    RankedEntry(
        rank=1,
        user_id="alice",
        username="Alice",
        score=79990,
        last_updated=NOW,
        subscore=1,
        metadata=msgspec.Raw(b'{"car":"Lotus Elise"}'),
    ),
    RankedEntry(rank=2, user_id="bob", username="Bob", score=83450, last_updated=EARLIER, subscore=0),
]

TOP = Example(data=TopData(leaderboard=_TOP, updated_at=NOW))
ACTIONS = Example(
    data=ActionsData(
        actions=[
            ActionEntry(type="COMPLETE_QUEST", score=100, min_seconds=0.0, boards=["global", "weekly"], attest=False),
            ActionEntry(type="DEFEAT_BOSS", score=500, min_seconds=30.0, boards=["global", "weekly"], attest=False),
            ActionEntry(type="WIN_RACE", score=250, min_seconds=0.0, boards=["global", "weekly"], attest=True),
            ActionEntry(
                type="OPEN_CHEST",
                score=10,
                min_seconds=0.0,
                boards=["global"],
                attest=False,
                hold_over_per_hour=20,
                hold_over=CountWindowData(count=5, window_s=60),
                hold_within_s=2.0,
                max_score_per_hour=150,
                velocity=VelocityData(window_s=300, windows=12, min_samples=4, z=3.0),
                rate_limit=CountWindowData(count=30, window_s=60),
            ),
        ]
    )
)
INITIALIZE = Example(
    request=InitializeRequest(action_type="COMPLETE_QUEST", action_id="quest-1"),
    data=InitializeData(action_token=ISSUED_JWT, expires_at="2026-12-03T10:35:00.000Z", expected_score=100),
)
UPDATE = Example(
    request=UpdateRequest(action_token=ISSUED_JWT, action_id="quest-1"),
    data=UpdateData(
        user_id="alice",
        previous_score=500,
        new_score=600,
        score_increment=100,
        rank=1,
        leaderboard=_TOP,
        boards=[
            AwardBoard(board="global", period="all", previous_score=500, new_score=600, rank=1),
            AwardBoard(board="weekly", period="2026-W49", previous_score=500, new_score=600, rank=1),
        ],
    ),
    accepted=HeldData(
        status="held", id=7, user_id="alice", action_type="COMPLETE_QUEST", action_id="quest-1", score_increment=100
    ),
)
USER_SCORE = Example(
    data=UserScoreData(user_id="bob", username="Bob", score=500, rank=2, percentile=0.0),
)
BOARDS = Example(data=BoardsData(boards=[_GLOBAL, _WEEKLY, _TRIAL]))
BOARD = Example(data=BoardDetail(**msgspec.structs.asdict(_WEEKLY), entries=2))
BOARD_TOP = Example(data=BoardTopData(board="trial", period="all", leaderboard=_TRIAL_TOP, updated_at=NOW))
RANKS = Example(data=RanksData(board="weekly", period="2026-W49", leaderboard=_WEEKLY_TOP[1:], updated_at=NOW, total=2))
AROUND = Example(data=AroundData(board="weekly", period="2026-W49", rank=2, entries=_WEEKLY_TOP, total=2))
LOOKUP = Example(
    request=LookupRequest(user_ids=["bob", "carol", "alice"], period="current"),
    data=LookupData(board="weekly", period="2026-W49", entries=_WEEKLY_TOP),
)
PERIODS = Example(
    data=PeriodsData(
        board="weekly",
        periods=[
            PeriodEntry(id="2026-W49", starts_at=_WEEK.starts_at, ends_at=_WEEK.ends_at, entries=2),
            PeriodEntry(
                id="2026-W48", starts_at="2026-11-23T00:00:00.000Z", ends_at="2026-11-30T00:00:00.000Z", entries=14
            ),
        ],
    )
)
USER_BOARDS = Example(
    data=UserBoardsData(
        user_id="bob",
        boards=[
            UserBoard(board="global", period="all", score=500, rank=2, percentile=0.0),
            UserBoard(board="weekly", period="2026-W49", score=500, rank=2, percentile=0.0),
            UserBoard(board="trial", period="all", score=83450, rank=2, percentile=0.0),
        ],
    )
)
# Alice passed bob on the weekly board.
PASSED = Notification(
    id=41,
    type="overtaken",
    created_at=NOW,
    data=Overtake(
        board="weekly",
        period="2026-W49",
        user_id="bob",
        by=Passer(user_id="alice", username="Alice", score=600),
        previous_rank=1,
        new_rank=2,
    ),
)
NOTIFICATIONS = Example(data=NotificationsData(notifications=[PASSED]))
EXPORT = Example(
    data=ExportData(
        user=ExportedUser(user_id="bob", username="Bob", created_at=NOW, updated_at=NOW),
        entries=[ExportedEntry(board="global", period="all", score=500, subscore=None, metadata=None, updated_at=NOW)],
        awards=[
            ExportedAward(
                id=7,
                action_type="DEFEAT_BOSS",
                action_id="boss-1",
                score_change=500,
                previous_score=0,
                new_score=500,
                created_at=NOW,
            )
        ],
        history=[
            ExportedChange(
                id=7,
                board="global",
                period="all",
                award_id=7,
                service=None,
                value=500,
                subscore=None,
                previous_score=None,
                new_score=500,
                metadata=None,
                created_at=NOW,
            )
        ],
        tokens=[
            ExportedToken(
                action_type="DEFEAT_BOSS",
                action_id="boss-1",
                score_increment=500,
                issued_at=NOW,
                expires_at=NOW,
                used_at=NOW,
            )
        ],
        notifications=[PASSED],
        attestations=[ExportedAttestation(action_id="race-42", service="racer", created_at=NOW)],
        held=[],
        acts=[],
        decisions=[],
        completed_actions=[ExportedCompletion(action_id="tutorial", completed_at=EARLIER)],
    )
)
ERASED = Example(data=ErasedData(erased=True))
STREAM = Example(
    text=(
        "id: 1\n"
        "event: leaderboard_update\n"
        'data: {"type":"leaderboard_update","data":{"seq":1,"board":"weekly","period":"2026-W49","leaderboard":'
        '[{"rank":1,"userId":"alice","username":"Alice","score":600,"change":"+0"}],"updatedAt":"'
        + NOW
        + '","total":1}}\n'
        "\n"
        ": keepalive\n"
        "\n"
    )
)
SCORE_WRITE = Example(
    request=ScoreWriteRequest(user_id="alice", score=79990, subscore=1, metadata={"car": "Lotus Elise"}),
    data=ScoreWriteData(
        board="trial", period="all", user_id="alice", previous_score=83450, new_score=79990, rank=1, improved=True
    ),
)
ATTEST = Example(
    request=AttestRequest(user_id="alice"),
    data=AttestData(action_id="race-41", user_id="alice", attested_at=EARLIER),
)
HEALTHY = Example(data=HealthData(status="ok"))
READY = Example(data=HealthData(status="ready"))
PAGE = Example(
    text='<!DOCTYPE html>\n<html lang="en">… the board\'s top 10 as a table, kept live by /static/board.js …</html>\n'
)
METRICS = Example(
    text="# HELP scoreboard_awards_total Awards committed, by action type and board.\n"
    "# TYPE scoreboard_awards_total counter\n"
    'scoreboard_awards_total{action="COMPLETE_QUEST",board="global"} 1042.0\n'
)
DOCS = Example(text='<!DOCTYPE html>\n<html lang="en">… Swagger UI, reading /api/openapi.json …</html>\n')
