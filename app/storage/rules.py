"""Cheat rules and repeat offenders' back-off, checked inside the award's transaction: each rule an
aggregate over the user's own rows read through a covering index (score_history by user, action type
and time; board_history by user, board and time; held_awards by user and time), never a scan of the
table, and an action's rules together one statement. The rules run after the award's history row
locked the user (PostgreSQL) or under SQLite's one writer, so racing awards of one user take turns
and each counts those before it."""

from __future__ import annotations

import math

from ..errors import RateLimited
from ..records import AwardClaim, HoldRules, Velocity
from .schema import Dialect
from .steps import Steps

HOUR_MS = 3_600_000  # the rolling window of `hold_over_per_hour` and `max_score_per_hour`
DAY_MS = 86_400_000  # how far back the back-off counts a user's held awards
MAX_DOUBLINGS = 40  # past this the back-off is capped anyway; keeps 2^k a small number

# The names of the rules, as held awards record them and operators and metrics see them.
HOLD_OVER_PER_HOUR = "hold_over_per_hour"
HOLD_OVER = "hold_over"
HOLD_WITHIN = "hold_within_s"
MAX_SCORE_PER_HOUR = "max_score_per_hour"
VELOCITY = "velocity"

# The rules' reads, one value each (velocity: four) of one SELECT, so that any set of rules costs
# the award one round trip. $1 is the user; {action}, {since}, {award}, {board}, {now} and {width}
# are parameters numbered as the statement is put together (each one used: PostgreSQL must infer its type).
# The user's completions of the action since a time (this award and the held ones included).
COUNT_SINCE = (
    "(SELECT COUNT(*) FROM score_history WHERE user_id = $1 AND action_type = {action} AND created_at > {since})"
)
# Another completion of the action since a time (0 or 1): the one being awarded is left out by its id.
DONE_SINCE = (
    "(SELECT COUNT(*) FROM (SELECT 1 FROM score_history WHERE user_id = $1 AND action_type = {action} "
    "AND created_at > {since} AND id <> {award} LIMIT 1) AS done)"
)
# What awards (any action's, not trusted writes) added to the user's entries on a board since a time.
BOARD_SCORE_SINCE = (
    "(SELECT COALESCE(SUM(value), 0) FROM board_history "
    "WHERE user_id = $1 AND board = {board} AND created_at > {since} AND award_id IS NOT NULL)"
)
# The user's score of the action per window of {width} ms back from {now}, since {since}: window 0
# (this one, the award included), then how many earlier windows had any, their sum and their sum of
# squares. One row, whatever the number of windows.
WINDOWS = (
    "(SELECT COALESCE(SUM(CASE WHEN w = 0 THEN s ELSE 0 END), 0) AS x, "
    "COALESCE(SUM(CASE WHEN w > 0 THEN 1 ELSE 0 END), 0) AS active, "
    "COALESCE(SUM(CASE WHEN w > 0 THEN s ELSE 0 END), 0) AS total, "
    "COALESCE(SUM(CASE WHEN w > 0 THEN 1.0 * s * s ELSE 0 END), 0) AS squares "
    "FROM (SELECT ({now} - created_at) / {width} AS w, SUM(score_change) AS s FROM score_history "
    "WHERE user_id = $1 AND action_type = {action} AND created_at > {since} GROUP BY w) AS windows) AS velocity"
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
        self.dialect = dialect
        self.recent_holds = dialect.sql(RECENT_HOLDS)
        self._reads: dict[tuple[bool, bool, bool, int, bool], str] = {}  # by the rules' shape

    def broken(self, claim: AwardClaim, rules: HoldRules, award_id: int, increment: int) -> Steps[tuple[str, ...]]:
        """The rules this award (its history row `award_id` written) breaks, every one of them, so
        that operators see each reason; empty: it lands. One statement reads what they all need."""
        text, args = self.reads(claim, rules, award_id)
        row = yield text, args
        assert row is not None  # aggregates answer one row
        values = iter(int(value) for value in row)  # PostgreSQL's SUM answers a Decimal
        broken: list[str] = []
        if rules.over_per_hour is not None and next(values) > rules.over_per_hour:
            broken.append(HOLD_OVER_PER_HOUR)
        if rules.over is not None and next(values) > rules.over[0]:
            broken.append(HOLD_OVER)
        if rules.within_ms is not None and next(values):
            broken.append(HOLD_WITHIN)
        if rules.max_score_per_hour is not None:
            added = [next(values) for _ in claim.boards]
            if any(a + increment > rules.max_score_per_hour for a in added):
                broken.append(MAX_SCORE_PER_HOUR)
        if rules.velocity is not None:
            windows = (next(values), next(values), next(values), next(values))
            if velocity_breaks(rules.velocity, increment, windows):
                broken.append(VELOCITY)
        return tuple(broken)

    def reads(self, claim: AwardClaim, rules: HoldRules, award_id: int) -> tuple[str, tuple[object, ...]]:
        """The one statement that reads what `rules` need, in this dialect (made once per shape of
        rules), and its arguments."""
        now = claim.now_ms
        args: list[object] = [claim.user_id]
        parts: list[str] = []
        action = ""

        def arg(value: object) -> str:
            args.append(value)
            return f"${len(args)}"

        def action_type() -> str:
            nonlocal action
            action = action or arg(claim.action_type)
            return action

        if rules.over_per_hour is not None:
            parts.append(COUNT_SINCE.format(action=action_type(), since=arg(now - HOUR_MS)))
        if rules.over is not None:
            parts.append(COUNT_SINCE.format(action=action_type(), since=arg(now - rules.over[1])))
        if rules.within_ms is not None:
            parts.append(DONE_SINCE.format(action=action_type(), since=arg(now - rules.within_ms), award=arg(award_id)))
        if rules.max_score_per_hour is not None:
            hour = arg(now - HOUR_MS)
            parts += [BOARD_SCORE_SINCE.format(board=arg(w.board), since=hour) for w in claim.boards]
        velocity = rules.velocity
        if velocity is not None:
            since = now - (velocity.windows + 1) * velocity.window_ms
            windows = WINDOWS.format(
                action=action_type(), now=arg(now), width=arg(velocity.window_ms), since=arg(since)
            )
            parts.append("velocity.x, velocity.active, velocity.total, velocity.squares")
        shape = (
            rules.over_per_hour is not None,
            rules.over is not None,
            rules.within_ms is not None,
            len(claim.boards) if rules.max_score_per_hour is not None else 0,
            velocity is not None,
        )
        text = self._reads.get(shape)
        if text is None:
            # Put together from the constants above; every value is a numbered parameter.
            text = "SELECT " + ", ".join(parts) + (f" FROM {windows}" if velocity is not None else "")  # noqa: S608
            text = self._reads[shape] = self.dialect.sql(text)
        return text, tuple(args)

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
