"""The store's writes and reads, written once for SQLite and PostgreSQL: the statements (rendered
per dialect) and the steps that run them. A write is a generator that yields each query and is
sent the query's first row (or None), so one algorithm serves the SQLite writer, which runs
statements synchronously on the loop, and asyncpg, which awaits them."""

from __future__ import annotations

import math

import msgspec

from ..errors import (
    ActionAlreadyCompleted,
    ActionTooFast,
    AlreadyDecided,
    ApiError,
    Disqualified,
    InvalidToken,
    NotAttested,
    NotFound,
    RateLimited,
    TokenAlreadyUsed,
    TokenExpired,
)
from ..records import (
    Award,
    AwardClaim,
    BoardPeriod,
    Decision,
    EntryChange,
    HeldAward,
    TokenGrant,
)
from .awarding import (
    CONSUME,
    RECORD_AWARD,
    RELEASE,
    SET_AWARD_SCORES,
    SPEND,
    TOUCH_USER,
    add_changes,
    add_entries,
    place,
)
from .rows import awarded, board_periods_text, held_award
from .rules import RuleChecks
from .schema import Dialect
from .steps import AllRows, Row, Steps

MAX_VALUE = 2**53  # scores and subscores are integers within ±2^53 (exact in JSON numbers and Redis)

# Usernames are NOT NULL, so `<>` says what SQLite's IS NOT and PostgreSQL's IS DISTINCT FROM would.
UPSERT_USER = (
    "INSERT INTO users (id, username, created_at, updated_at) VALUES ($1, $2, $3, $3) "
    "ON CONFLICT (id) DO UPDATE SET username = excluded.username, updated_at = excluded.updated_at "
    "WHERE users.username <> excluded.username"
)
# An award's row, or its pair kept when retention deleted the row (storage/retention.py).
ACTION_DONE = (
    "SELECT 1 FROM score_history WHERE user_id = $1 AND action_id = $2 "
    "UNION ALL SELECT 1 FROM completed_actions WHERE user_id = $1 AND action_id = $2"
)
# What refuses a grant, in one round trip: the action completed (its row, or its pair kept by
# retention), the user disqualified.
GRANT_REFUSALS = (
    "SELECT (SELECT 1 FROM score_history WHERE user_id = $1 AND action_id = $2), "
    "(SELECT disqualified_at FROM users WHERE id = $1), "
    "(SELECT 1 FROM completed_actions WHERE user_id = $1 AND action_id = $2)"
)
UNUSED_TOKENS = (
    "SELECT COUNT(*), MIN(expires_at) FROM action_tokens WHERE user_id = $1 AND used_at IS NULL AND expires_at > $2"
)
RECORD_GRANT = (
    "INSERT INTO action_tokens (nonce, token_hash, user_id, action_type, action_id, score_increment, "
    "issued_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
)
GRANT_ROW = "SELECT user_id, action_type, action_id, used_at, expires_at FROM action_tokens WHERE nonce = $1"
# One write of a user at a time where rows are locked: a trusted write, a held award's approval, a
# moderation act.
LOCK_USER = "SELECT username, disqualified_at FROM users WHERE id = $1{row_lock}"
NONCE_RECORDED = "SELECT 1 FROM score_history WHERE token_nonce = $1"
USER_KNOWN = "SELECT 1 FROM users WHERE id = $1"
USER_DISQUALIFIED = "SELECT 1 FROM users WHERE id = $1 AND disqualified_at IS NOT NULL"
USER = "SELECT id, username FROM users WHERE id = $1"
STANDINGS = (
    "SELECT e.user_id, u.username, e.score, e.seq, e.updated_at, e.subscore, e.metadata "
    "FROM board_entries e JOIN users u ON u.id = e.user_id "
    "WHERE e.board = $1 AND e.period = $2 AND u.disqualified_at IS NULL"
)
# Attestations: one per user and action, kept as first made, spent by the award that needs it.
ATTEST = (
    "INSERT INTO attestations (user_id, action_id, service, created_at) VALUES ($1, $2, $3, $4) "
    "ON CONFLICT (user_id, action_id) DO NOTHING RETURNING created_at"
)
ATTESTED_AT = "SELECT created_at FROM attestations WHERE user_id = $1 AND action_id = $2"
# Locked where rows are: two awards needing one attestation take turns, and the second finds it spent.
ATTESTATION = "SELECT 1 FROM attestations WHERE user_id = $1 AND action_id = $2{row_lock}"
SPEND_ATTESTATION = "DELETE FROM attestations WHERE user_id = $1 AND action_id = $2"
PURGE_ATTESTATIONS = "DELETE FROM attestations WHERE created_at < $1"
# Held awards (cheat quarantine). An award counts its user's awards of its type in the rolling hour
# after its own history row is inserted, which locked the user (where rows are locked): two awards
# racing past the limit take turns, and the second counts the first.
HELD_COLUMNS = (
    "id, award_id, user_id, action_type, action_id, score, boards, created_at, status, decided_by, reason, "
    "decided_at, rules"
)
HOLD = (
    "INSERT INTO held_awards (award_id, user_id, action_type, action_id, score, boards, status, created_at, rules) "
    "VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8) RETURNING id"
)
HELD = f"SELECT {HELD_COLUMNS} FROM held_awards WHERE id = $1"  # noqa: S608 - constants only
HELD_LIST = f"SELECT {HELD_COLUMNS} FROM held_awards WHERE status = $1 AND id > $2 ORDER BY id LIMIT $3"  # noqa: S608
# Decided once: of concurrent decisions the first to update the row wins, the others match nothing.
DECIDE = (
    "UPDATE held_awards SET status = $1, decided_by = $2, reason = $3, decided_at = $4 "  # noqa: S608
    f"WHERE id = $5 AND status = 'pending' RETURNING {HELD_COLUMNS}"
)
# Notices: each user's newest `keep` within the kept time are theirs to read; older ones go.
ADD_NOTICE = "INSERT INTO notices (user_id, type, data, created_at) VALUES ($1, $2, $3, $4)"
TRIM_NOTICES = (
    "DELETE FROM notices WHERE user_id = $1 AND id < "
    "(SELECT id FROM notices WHERE user_id = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)"
)
KEPT_NOTICES = (
    "SELECT id, user_id, type, data, created_at FROM (SELECT id, user_id, type, data, created_at FROM notices "
    "WHERE user_id = $1 AND created_at >= $2 ORDER BY id DESC LIMIT $3) AS kept WHERE id > $4 ORDER BY id"
)


def check_unused(held: int, first_expiry_ms: int | None, *, now_ms: int, max_unused: int | None) -> None:
    """Refuse (429) a user who already holds `max_unused` unexpired unused tokens; Retry-After is
    when the first of them expires."""
    if max_unused is not None and held >= max_unused:
        wait_ms = (first_expiry_ms or now_ms) - now_ms
        raise RateLimited(max(1, math.ceil(wait_ms / 1000)), "Too many unused action tokens for this user")


def refusal(claim: AwardClaim, token: Row) -> ApiError:
    """Why a token's conditional update matched nothing, from its row (user_id, action_type,
    action_id, used_at, expires_at) or None when it is not recorded."""
    return token_problem(claim, token) or ActionTooFast(details={"minSeconds": claim.min_elapsed_ms / 1000})


def token_problem(claim: AwardClaim, token: Row) -> ApiError | None:
    """What refuses the claim in its token's row (as `refusal` reads it) whatever the time since it
    was issued: unknown, someone else's, spent or expired; None for a token that could award now."""
    if token is None:
        return InvalidToken("Action token is not known to this server")
    user_id, action_type, action_id, used_at, expires_at = token
    if (user_id, action_type, action_id) != (claim.user_id, claim.action_type, claim.action_id):
        return InvalidToken("Action token is not known to this server")
    if used_at is not None:
        return TokenAlreadyUsed()
    if expires_at <= claim.now_ms:
        return TokenExpired()
    return None


class Operations:
    """The statements in one dialect, and the steps of each write.

    A refusal raises an ApiError having written nothing: the SQLite writer shares one transaction
    among a batch's writes, so refusals come before a write's first statement that changes
    anything, or undo it (PostgreSQL rolls the transaction back as well)."""

    def __init__(self, dialect: Dialect) -> None:
        self.row_locks = dialect.row_locks
        self._sql = sql = dialect.sql
        self.upsert_user = sql(UPSERT_USER)
        self.action_done = sql(ACTION_DONE)
        self.grant_refusals, self.user_disqualified = sql(GRANT_REFUSALS), sql(USER_DISQUALIFIED)
        self.unused_tokens = sql(UNUSED_TOKENS)
        self.record_grant = sql(RECORD_GRANT)
        self.consume = sql(CONSUME)
        self.grant_row = sql(GRANT_ROW)
        self.record_award = sql(RECORD_AWARD)
        self.release = sql(RELEASE)
        self.nonce_recorded = sql(NONCE_RECORDED)
        self.user_known = sql(USER_KNOWN)
        self.set_award_scores = sql(SET_AWARD_SCORES)
        # Where statements cannot write through CTEs (SQLite): an award's history rows on all its boards,
        # then its entries (two statements, by number of boards; a claim names each board once).
        self._changes: dict[int, tuple[AllRows, AllRows]] = {}
        self.touch_user = sql(TOUCH_USER)
        # Where statements write through CTEs, an award is two: SPEND, then `place` on its boards.
        self.spend: str | None = sql(SPEND) if dialect.writing_ctes else None
        self._places: dict[tuple[int, bool], str] | None = {} if dialect.writing_ctes else None
        self.lock_user = sql(LOCK_USER)
        self.user = sql(USER)
        self.standings = sql(STANDINGS)
        self.add_notice = sql(ADD_NOTICE)
        self.trim_notices = sql(TRIM_NOTICES)
        self.kept_notices = sql(KEPT_NOTICES)
        self.attest_action = sql(ATTEST)
        self.attested_at = sql(ATTESTED_AT)
        self.attestation = sql(ATTESTATION)
        self.spend_attestation = sql(SPEND_ATTESTATION)
        self.purge_attestations = sql(PURGE_ATTESTATIONS)
        self.rules = RuleChecks(dialect)
        self.hold = sql(HOLD)
        self.held = sql(HELD)
        self.held_list = sql(HELD_LIST)
        self.decide_held = sql(DECIDE)

    def grant(self, grant: TokenGrant, max_unused: int | None) -> Steps[None]:
        """Record an issued token (creating or renaming its user); refuse an action the user
        already completed, and a user who holds `max_unused` unexpired unused tokens."""
        upsert = (self.upsert_user, (grant.user_id, grant.username, grant.issued_ms))
        if self.row_locks:
            # The upsert locks the user's row until commit, updated or not (ON CONFLICT DO UPDATE
            # locks the conflicting row; a new row blocks other inserts of its id): one grant of a
            # user at a time, so the count below cannot be overtaken. A refusal rolls it back.
            yield upsert
        done, disqualified, kept_done = (yield self.grant_refusals, (grant.user_id, grant.action_id)) or (None,) * 3
        if disqualified is not None:
            raise Disqualified(details={"userId": grant.user_id})
        if done is not None or kept_done is not None:
            raise ActionAlreadyCompleted()
        if max_unused is not None:
            unused = yield self.unused_tokens, (grant.user_id, grant.issued_ms)
            assert unused is not None  # an aggregate answers one row
            check_unused(unused[0], unused[1], now_ms=grant.issued_ms, max_unused=max_unused)
        if not self.row_locks:  # the whole database is locked already; a refusal wrote nothing
            yield upsert
        yield (
            self.record_grant,
            (
                grant.nonce,
                grant.token_hash,
                grant.user_id,
                grant.action_type,
                grant.action_id,
                grant.score_increment,
                grant.issued_ms,
                grant.expires_ms,
            ),
        )

    def award(self, claim: AwardClaim) -> Steps[Award]:
        """Consume the token, record the history row, raise the score on each board, set the
        award's scores: each statement answering what the next needs (RETURNING); where statements
        write through CTEs, two statements in all. The slow path, a refusal, says why. An action that
        needs an attestation finds it before the first write and spends it with the award. One over
        a cheat rule holds is kept instead (`Award.held`): token spent and history row kept, no board
        touched. A repeat offender in back-off is refused before anything is read or written."""
        now = claim.now_ms
        yield from self.rules.backoff(claim)
        if claim.attest and (yield self.attestation, (claim.user_id, claim.action_id)) is None:
            raise (yield from self._unattested(claim))
        spent = yield from self._spend(claim)
        if spent is None:
            raise refusal(claim, (yield self.grant_row, (claim.nonce,)))
        increment, award_id = spent
        if award_id is None:  # a replay or a repeated action: undo the consumption, then say which
            yield self.release, (claim.nonce,)
            if (yield self.nonce_recorded, (claim.nonce,)) is not None:
                raise TokenAlreadyUsed()
            if (yield self.user_known, (claim.user_id,)) is None:
                raise InvalidToken("Action token is not known to this server")  # its user row comes with it
            if (yield self.user_disqualified, (claim.user_id,)) is not None:
                raise Disqualified(details={"userId": claim.user_id})  # the token released: usable again
            raise ActionAlreadyCompleted()
        if claim.attest:
            yield self.spend_attestation, (claim.user_id, claim.action_id)
        if claim.rules is not None and (
            broken := (yield from self.rules.broken(claim, claim.rules, award_id, increment))
        ):
            return (yield from self._hold(claim, award_id, increment, broken))
        changes = yield from self._place(claim.boards, claim.user_id, award_id, increment, now, touch=claim.username)
        return awarded(claim, increment, changes)

    def _hold(self, claim: AwardClaim, award_id: int, increment: int, broken: tuple[str, ...]) -> Steps[Award]:
        """Keep an award for an operator, with the board periods it would have landed on now and the
        rules it broke; the award, held under its id, with no changes."""
        row = yield (
            self.hold,
            (
                award_id,
                claim.user_id,
                claim.action_type,
                claim.action_id,
                increment,
                board_periods_text(claim.boards),
                claim.now_ms,
                msgspec.json.encode(broken).decode(),
            ),
        )
        assert row is not None  # RETURNING answers the inserted row
        yield self.touch_user, (claim.username, claim.now_ms, claim.user_id)
        return Award(
            user_id=claim.user_id,
            username=claim.username,
            action_type=claim.action_type,
            action_id=claim.action_id,
            previous_score=0,
            new_score=0,
            score_increment=increment,
            awarded_ms=claim.now_ms,
            changes=[],
            held=row[0],
            held_by=broken,
        )

    def decide(self, decision: Decision) -> Steps[tuple[HeldAward, Award | None]]:
        """Decide a held award once: NOT_FOUND for an unknown id and ALREADY_DECIDED for a decided
        one, having written nothing. An approval adds its score on `decision.boards`, as an award
        does, and answers that award."""
        status = "approved" if decision.approve else "rejected"
        now = decision.now_ms
        row = yield self.decide_held, (status, decision.operator, decision.reason, now, decision.held_id)
        if row is None:
            kept = yield self.held, (decision.held_id,)
            if kept is None:
                raise NotFound("No such held award", details={"id": decision.held_id})
            raise AlreadyDecided(details={"id": decision.held_id, "status": held_award(kept).status})
        held = held_award(row)
        if not decision.approve:
            return held, None
        user = yield self.lock_user, (held.user_id,)  # locked where rows are: one write of a user at a time
        assert user is not None  # the history row refers to it
        if user[1] is not None:  # the decision is undone (SQLite: its savepoint): pending, decidable later
            raise Disqualified(details={"userId": held.user_id})
        changes = yield from self._place(decision.boards, held.user_id, held.award_id, held.score, now)
        previous_score, new_score = (changes[0].previous_score or 0, changes[0].new_score) if changes else (0, 0)
        award = Award(
            user_id=held.user_id,
            username=user[0],
            action_type=held.action_type,
            action_id=held.action_id,
            previous_score=previous_score,
            new_score=new_score,
            score_increment=held.score,
            awarded_ms=now,
            changes=changes,
        )
        return held, award

    def _unattested(self, claim: AwardClaim) -> Steps[ApiError]:
        """Why an award finding no attestation is refused, read before any write: its token's own
        problem first, then an action already completed (whose award spent the attestation), else
        NOT_ATTESTED, which leaves the token usable."""
        problem = token_problem(claim, (yield self.grant_row, (claim.nonce,)))
        if problem is not None:
            return problem
        if (yield self.action_done, (claim.user_id, claim.action_id)) is not None:
            return ActionAlreadyCompleted()
        return NotAttested(details={"actionId": claim.action_id})

    def attest(self, user_id: str, action_id: str, service: str, now_ms: int) -> Steps[int]:
        """Record a trusted server's attestation of a user's action unless one is held; when the
        one held was made (ms)."""
        while True:
            if (made := (yield self.attest_action, (user_id, action_id, service, now_ms))) is not None:
                return int(made[0])
            # Where rows are locked, an award may spend the one held between these two statements:
            # then this one is recorded after all.
            if (held := (yield self.attested_at, (user_id, action_id))) is not None:
                return int(held[0])

    def _spend(self, claim: AwardClaim) -> Steps[tuple[int, int | None] | None]:
        """Consume the token and record the award's history row: (the token's increment, the row's
        id or None when nothing was recorded), or None when the token could not be consumed."""
        now = claim.now_ms
        consume = (now, claim.nonce, claim.user_id, claim.action_type, claim.action_id, now - claim.min_elapsed_ms)
        if self.spend is not None:
            row = yield self.spend, consume
            return None if row is None else (row[0], row[2])
        token = yield self.consume, consume
        if token is None:
            return None
        increment, token_hash = token
        history = yield (
            self.record_award,
            (claim.action_type, claim.action_id, increment, claim.nonce, token_hash, now, claim.user_id),
        )
        return increment, None if history is None else history[0]

    def _place(
        self,
        boards: tuple[BoardPeriod, ...],
        user_id: str,
        award_id: int,
        increment: int,
        now: int,
        *,
        touch: str | None = None,
    ) -> Steps[list[EntryChange]]:
        """An award's history row and entry on each board, its scores set from the first board's
        and, with a username to `touch`, the user's name and time: one statement where CTEs write,
        else three or four whatever the boards."""
        if not boards:
            yield self.set_award_scores, (0, 0, award_id)
            return []
        flat = tuple(value for where in boards for value in (where.board, where.period))
        if self._places is not None:
            key = (len(boards), touch is not None)
            if (statement := self._places.get(key)) is None:
                statement = self._places[key] = self._sql(place(len(boards), touch=touch is not None))
            named = () if touch is None else (touch,)
            row = yield statement, (user_id, award_id, increment, now, *named, *flat)
            assert row is not None  # every insert answers its row
            return [
                EntryChange(
                    where=where,
                    previous_score=row[5 * i + 1],
                    new_score=row[5 * i + 2],
                    subscore=row[5 * i + 3],
                    metadata=row[5 * i + 4],
                    seq=row[5 * i],
                )
                for i, where in enumerate(boards)
            ]
        if (pair := self._changes.get(len(boards))) is None:
            pair = self._changes[len(boards)] = (
                AllRows(self._sql(add_changes(len(boards)))),
                AllRows(self._sql(add_entries(len(boards)))),
            )
        added = yield pair[0], (user_id, award_id, increment, now, *flat)
        assert added is not None  # AllRows: a tuple of the rows RETURNING answered, one per board
        history = {(row[1], row[2]): row for row in added}
        rows = tuple(history[where.board, where.period] for where in boards)
        kept = yield pair[1], (user_id, now, *(v for row in rows for v in (row[1], row[2], row[4], row[0])))
        assert kept is not None
        entries = {(row[0], row[1]): row for row in kept}
        changes = []
        for where, (seq, _, _, previous, new) in zip(boards, rows, strict=True):
            entry = entries[where.board, where.period]
            changes.append(
                EntryChange(
                    where=where, previous_score=previous, new_score=new, subscore=entry[2], metadata=entry[3], seq=seq
                )
            )
        yield self.set_award_scores, (changes[0].previous_score or 0, changes[0].new_score, award_id)
        if touch is not None:
            yield self.touch_user, (touch, now, user_id)
        return changes
