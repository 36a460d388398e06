"""Cheat rules and repeat offenders' back-off, checked inside the award's transaction: each one an
indexed aggregate over the user's own rows (score_history by user, action type and time; board_history
by user, board and time; held_awards by user and time), never a scan of the table. The rules run
after the award's history row locked the user (PostgreSQL) or under SQLite's one writer, so racing
awards of one user take turns and each counts those before it."""

from __future__ import annotations

import math

from ..errors import RateLimited
from ..records import AwardClaim, HoldRules, Velocity
from .schema import Dialect
from .steps import Row, Steps

HOUR_MS = 3_600_000  # the rolling window of `hold_over_per_hour` and `max_score_per_hour`
DAY_MS = 86_400_000  # how far back the back-off counts a user's held awards
MAX_DOUBLINGS = 40  # past this the back-off is capped anyway; keeps 2^k a small number

# The names of the rules, as held awards record them and operators and metrics see them.
HOLD_OVER_PER_HOUR = "hold_over_per_hour"
HOLD_OVER = "hold_over"
HOLD_WITHIN = "hold_within_s"
MAX_SCORE_PER_HOUR = "max_score_per_hour"
VELOCITY = "velocity"
RULES = (HOLD_OVER_PER_HOUR, HOLD_OVER, HOLD_WITHIN, MAX_SCORE_PER_HOUR, VELOCITY)

# The user's completions of the action since a time (this award and the held ones included).
COUNT_SINCE = "SELECT COUNT(*) FROM score_history WHERE user_id = $1 AND action_type = $2 AND created_at > $3"
# Another completion of the action since a time: the one being awarded is left out by its id.
DONE_SINCE = (
    "SELECT 1 FROM score_history WHERE user_id = $1 AND action_type = $2 AND created_at > $3 AND id <> $4 LIMIT 1"
)
# What awards (any action's, not trusted writes) added to the user's entries on a board since a time.
BOARD_SCORE_SINCE = (
    "SELECT COALESCE(SUM(value), 0) FROM board_history "
    "WHERE user_id = $1 AND board = $2 AND created_at > $3 AND award_id IS NOT NULL"
)
# The user's score of the action per window back from now ($1), windows of $2 ms, the last $5 ms:
# window 0 (this one, the award included), then how many earlier windows had any, their sum and their
# sum of squares. One row, whatever the number of windows.
WINDOWS = (
    "SELECT COALESCE(SUM(CASE WHEN w = 0 THEN s ELSE 0 END), 0), COALESCE(SUM(CASE WHEN w > 0 THEN 1 ELSE 0 END), 0), "
    "COALESCE(SUM(CASE WHEN w > 0 THEN s ELSE 0 END), 0), COALESCE(SUM(CASE WHEN w > 0 THEN s * s ELSE 0 END), 0) "
    "FROM (SELECT ($1 - created_at) / $2 AS w, SUM(score_change) AS s FROM score_history "
    "WHERE user_id = $3 AND action_type = $4 AND created_at > $5 GROUP BY w) AS windows"
)
# The user's held awards since a time that no operator approved, and when the last was held.
RECENT_HOLDS = (
    "SELECT COUNT(*), MAX(created_at) FROM held_awards WHERE user_id = $1 AND created_at > $2 AND status <> 'approved'"
)


def velocity_breaks(velocity: Velocity, increment: int, row: tuple[int, int, int, int]) -> bool:
    """Whether the last window's score is an outlier against the windows before it (the formula of
    docs/operators.md): z = (x - mean) / max(stddev, the award's score, 1) over all `windows` earlier
    windows (empty ones count as 0), applied once `min_samples` of them had a completion."""
    current, active, total, squares = row
    if active < velocity.min_samples:
        return False
    n = velocity.windows
    mean = total / n
    spread = math.sqrt(max(0.0, squares / n - mean * mean))
    return (current - mean) / max(spread, increment, 1) > velocity.z


def backoff_wait_ms(held: int, last_ms: int, now_ms: int, *, base_ms: int, max_ms: int) -> int:
    """How long an update must still wait (0: none) after `held` held awards in 24 h, the last at
    `last_ms`: from the 2nd, base * 2^(held-2), at most `max_ms`, from the last hold."""
    if held < 2:
        return 0
    wait: int = min(max_ms, base_ms * 2 ** min(held - 2, MAX_DOUBLINGS))
    return max(0, last_ms + wait - now_ms)


class RuleChecks:
    """The rules' statements in one dialect, and the steps that check them."""

    def __init__(self, dialect: Dialect) -> None:
        self.count_since = dialect.sql(COUNT_SINCE)
        self.done_since = dialect.sql(DONE_SINCE)
        self.board_score_since = dialect.sql(BOARD_SCORE_SINCE)
        self.windows = dialect.sql(WINDOWS)
        self.recent_holds = dialect.sql(RECENT_HOLDS)

    def broken(self, claim: AwardClaim, rules: HoldRules, award_id: int, increment: int) -> Steps[tuple[str, ...]]:
        """The rules this award (its history row `award_id` written) breaks, every one of them, so
        that operators see each reason; empty: it lands."""
        now, user, action = claim.now_ms, claim.user_id, claim.action_type
        broken: list[str] = []
        if rules.over_per_hour is not None:
            counted = yield self.count_since, (user, action, now - HOUR_MS)
            if _number(counted) > rules.over_per_hour:
                broken.append(HOLD_OVER_PER_HOUR)
        if rules.over is not None:
            count, window_ms = rules.over
            counted = yield self.count_since, (user, action, now - window_ms)
            if _number(counted) > count:
                broken.append(HOLD_OVER)
        if rules.within_ms is not None and (
            (yield self.done_since, (user, action, now - rules.within_ms, award_id)) is not None
        ):
            broken.append(HOLD_WITHIN)
        if rules.max_score_per_hour is not None:
            for where in claim.boards:
                added = yield self.board_score_since, (user, where.board, now - HOUR_MS)
                if _number(added) + increment > rules.max_score_per_hour:
                    broken.append(MAX_SCORE_PER_HOUR)
                    break
        if rules.velocity is not None:
            v = rules.velocity
            row = yield self.windows, (now, v.window_ms, user, action, now - (v.windows + 1) * v.window_ms)
            assert row is not None  # an aggregate answers one row
            if velocity_breaks(v, increment, (int(row[0]), int(row[1]), int(row[2]), int(row[3]))):
                broken.append(VELOCITY)
        return tuple(broken)

    def backoff(self, claim: AwardClaim) -> Steps[None]:
        """Refuse a repeat offender's update (RATE_LIMITED, Retry-After) before anything is written."""
        if claim.backoff is None:
            return
        row = yield self.recent_holds, (claim.user_id, claim.now_ms - DAY_MS)
        assert row is not None  # an aggregate answers one row
        held, last = int(row[0]), row[1]
        if last is None:
            return
        wait = backoff_wait_ms(
            held, int(last), claim.now_ms, base_ms=claim.backoff.base_ms, max_ms=claim.backoff.max_ms
        )
        if wait > 0:
            raise RateLimited(
                max(1, math.ceil(wait / 1000)), "Too many of your awards were held lately; wait before the next update"
            )


def _number(row: Row) -> int:
    """An aggregate's one value (PostgreSQL's SUM answers a Decimal)."""
    assert row is not None  # an aggregate answers one row
    return int(row[0])
