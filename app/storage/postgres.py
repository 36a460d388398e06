"""PostgreSQL store (asyncpg): the system of record for many processes, the shared operations
each in a transaction of its own."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TypeVar

import asyncpg

from ..batching import TurnBatch
from ..clock import now_ms
from ..errors import ServiceUnavailable
from ..metrics.tally import Histogram
from ..records import (
    Award,
    AwardClaim,
    BoardPeriod,
    Corrected,
    Decision,
    HeldAward,
    ModerationAct,
    Notice,
    NoticeDraft,
    OperatorAct,
    Removal,
    ScoreWrite,
    Standing,
    TokenGrant,
    UserHistory,
    UserRecord,
    WriteOutcome,
)
from . import catalog, moderation, trusted
from .awarding import AWARD_FUNCTION, AWARDS_AT_ONCE, CREATE_AWARD_FUNCTION, at_once_arguments
from .chain import SCHEMA_KEY, SEALING_LOCK, ChainStatements, head, seal, triggers
from .moderation import Places
from .operations import Operations
from .personal import Kept, RowSteps, Statements, erase, read
from .retention import Statements as RetentionStatements
from .retention import Swept, sweep_awards, sweep_changes
from .rows import awarded_at_once, held_award, kept_notice, notice, standing, user_record
from .schema import APPLIED, MIGRATIONS_TABLE, POSTGRES, RECORD, migrations, render
from .steps import AllRows, Steps, in_period

log = logging.getLogger(__name__)

T = TypeVar("T")
OPS = Operations(POSTGRES)
PERSONAL = Statements(POSTGRES)
MODERATION = moderation.Statements(POSTGRES)
TRUSTED = trusted.Statements(POSTGRES)
CATALOG = catalog.Statements(POSTGRES)
CHAIN = ChainStatements(POSTGRES)
TRIGGERS = triggers(POSTGRES)
# The chain's triggers in this schema; (re)created only when one is missing, since replacing a
# trigger locks its table against writes for a moment, at every process's start.
CHAIN_TRIGGERS = (
    "SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
    "WHERE c.relnamespace = current_schema()::regnamespace AND t.tgname LIKE 'audit%'"
)
RETENTION = RetentionStatements(POSTGRES)
SWEEP_WINDOW = 1000  # rows a retention transaction looks at
PURGE = "DELETE FROM action_tokens WHERE expires_at < $1"
PURGE_NOTICES = "DELETE FROM notices WHERE created_at < $1"
# A batch of notices in one round trip each (the shared steps would take one per notice and user).
ADD_NOTICES = (
    "INSERT INTO notices (user_id, type, data, created_at) "
    "SELECT n.user_id, n.type, n.data, $4 FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY "
    "AS n(user_id, type, data, i) ORDER BY n.i RETURNING id"
)
TRIM_NOTICES = (
    "DELETE FROM notices n USING unnest($1::text[]) AS u(user_id) WHERE n.user_id = u.user_id AND n.id < "
    "(SELECT m.id FROM notices m WHERE m.user_id = u.user_id ORDER BY m.id DESC LIMIT 1 OFFSET $2)"
)

AWARD_FUNCTION_EXISTS = "SELECT 1 FROM pg_proc WHERE proname = $1 AND pronamespace = current_schema()::regnamespace"

_MIGRATION_LOCK = 0x5C0EB0A2  # advisory lock (with SCHEMA_KEY): one process migrates a schema at a time

# Connection-level failures: the database is not there right now.
# Claims in one call of the award function: ~45-70 ms of PostgreSQL's time (170-280 us a claim).
# Unbounded, a call gathering a burst's thousands would hold all their users for seconds.
MOST_AT_ONCE = 256
# Tries of a write that PostgreSQL keeps ending to break deadlocks; the last one's error is the answer.
DEADLOCK_TRIES = 3
_OUTAGES = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError, TimeoutError)


@contextlib.contextmanager
def _unavailable_on_outage() -> Iterator[None]:
    try:
        yield
    except _OUTAGES:
        raise ServiceUnavailable("The database is unavailable") from None


async def _run(conn: asyncpg.Connection, steps: Steps[T]) -> T:
    """Run shared steps on one connection, awaiting each query's first row (every row of `AllRows`)."""
    try:
        query, args = next(steps)
        while True:
            if isinstance(query, AllRows):  # asyncpg takes the text as a str, not a subclass
                query, args = steps.send(tuple(tuple(row) for row in await conn.fetch(str(query), *args)))
                continue
            row = await conn.fetchrow(query, *args)
            query, args = steps.send(None if row is None else tuple(row))
    except StopIteration as done:
        answer: T = done.value
        return answer


async def _run_rows(conn: asyncpg.Connection, steps: RowSteps[T]) -> T:
    """Run steps that are sent every row of each query, on one connection."""
    try:
        query, args = next(steps)
        while True:
            rows = await conn.fetch(query, *args)
            query, args = steps.send([tuple(row) for row in rows])
    except StopIteration as done:
        answer: T = done.value
        return answer


async def _keep_session(conn: asyncpg.Connection) -> None:
    """A connection going back to the pool keeps its session as it is. asyncpg's default reset
    (advisory unlock, CLOSE ALL, UNLISTEN, RESET ALL) costs every transaction one more round trip,
    and nothing here leaves session state: advisory locks are taken per transaction, nothing SETs
    or LISTENs, no cursor outlives its transaction. asyncpg still rolls back an open transaction."""


class PostgresStore:
    """A pool of connections; every write is one transaction."""

    # Of a seal only the hashing runs on the loop, ~3 us a row: 1024 hold it ~3 ms. Pages of 128
    # (seven round trips each) fell behind three-board awards at the box's limit.
    most_sealed = 1024

    def __init__(self, dsn: str, *, pool_size: int = 10, clock: Callable[[], int] = now_ms) -> None:
        self.dsn = dsn
        self.pool_size = pool_size
        self.clock = clock  # the service's: a write's period is checked against it as its transaction begins
        self._pool: asyncpg.Pool | None = None
        self.round_trips = Histogram()  # seconds of each transaction, from its connection's acquisition to COMMIT
        # One call of the award function at a time: the awards of the turns it takes go in the next,
        # at most MOST_AT_ONCE of them, so that a burst's call does not hold its users for long.
        self._at_once: TurnBatch[AwardClaim, Award | None] = TurnBatch(
            self._award_at_once,
            cancelled=lambda: ServiceUnavailable("The server is stopping"),
            most_in_flight=1,
            most_items=MOST_AT_ONCE,
        )

    async def open(self) -> None:
        """Create the pool and apply migrations under an advisory lock."""
        pool = await asyncpg.create_pool(
            self.dsn, min_size=1, max_size=self.pool_size, command_timeout=10, reset=_keep_session
        )
        try:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute(f"SELECT pg_advisory_xact_lock($1, {SCHEMA_KEY})", _MIGRATION_LOCK)
                await conn.execute(render(MIGRATIONS_TABLE, POSTGRES))
                applied = {row[0] for row in await conn.fetch(APPLIED)}
                for version, statements in migrations(POSTGRES):
                    if version not in applied:
                        for statement in statements:
                            await conn.execute(statement)
                        await conn.execute(POSTGRES.sql(RECORD), version, int(time.time()))
                        log.info("applied migration %s", version)
                if len({row[0] for row in await conn.fetch(CHAIN_TRIGGERS)}) < sum(" TRIGGER " in s for s in TRIGGERS):
                    for statement in TRIGGERS:
                        await conn.execute(statement)
                if await conn.fetchval(AWARD_FUNCTION_EXISTS, AWARD_FUNCTION) is None:
                    await conn.execute(CREATE_AWARD_FUNCTION)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def close(self) -> None:
        """Close the pool; idempotent."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection for one statement, its own transaction: no BEGIN and COMMIT round
        trips (the metrics count it as a transaction)."""
        if self._pool is None:
            raise ServiceUnavailable("The database is not open")
        with _unavailable_on_outage():
            async with self._pool.acquire() as conn:
                started = time.perf_counter()
                yield conn
                self.round_trips.observe(time.perf_counter() - started)

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[asyncpg.Connection]:
        async with self._connection() as conn, conn.transaction():
            yield conn

    async def _write(self, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run a write in a transaction of its own. One that PostgreSQL ends to break a deadlock kept
        nothing: it runs again, up to DEADLOCK_TRIES times in all."""
        for attempt in range(1, DEADLOCK_TRIES):
            try:
                async with self._transaction() as conn:
                    return await work(conn)
            except asyncpg.DeadlockDetectedError:
                log.warning("PostgreSQL ended a write to break a deadlock; it runs again (try %d)", attempt + 1)
        async with self._transaction() as conn:
            return await work(conn)

    def pool_usage(self) -> tuple[int, int] | None:
        """(connections in use, the pool's size) now."""
        pool = self._pool
        if pool is None:
            return None
        return pool.get_size() - pool.get_idle_size(), pool.get_max_size()

    async def ping(self) -> None:
        """Run a trivial query."""
        async with self._connection() as conn:
            await conn.fetchval("SELECT 1")

    async def grant(self, grant: TokenGrant, *, max_unused: int | None = None) -> None:
        """Record an issued token, unless refused; a refusal rolls everything back."""
        await self._write(lambda conn: _run(conn, OPS.grant(grant, max_unused)))

    async def award(self, claim: AwardClaim) -> Award:
        """Consume the token and raise the score, exactly once: one transaction. A claim that needs
        no attestation, rule or back-off goes with the others of its loop turn in one function call;
        the steps run in a transaction of their own (and say why) when that call cannot award it."""
        if claim.boards and not claim.attest and claim.rules is None and claim.backoff is None:
            award = await self._at_once.submit(claim)
            if award is not None:
                return award
        return await self._write(lambda conn: _run(conn, in_period(claim.ends_ms, self.clock, OPS.award(claim))))

    async def _award_at_once(self, claims: list[AwardClaim]) -> list[Award | None]:
        """One call of the award function for these claims: each one's award, or None where it
        takes the steps (all of them should the call fail but the database be there)."""
        # A claim whose period ended while it waited goes to the steps, which refuse it (PeriodEnded).
        now = self.clock()
        current = [claim.ends_ms is None or now < claim.ends_ms for claim in claims]
        called = [claim for claim, ok in zip(claims, current, strict=True) if ok]
        if not called:
            return [None] * len(claims)
        try:
            async with self._connection() as conn:
                rows = await conn.fetch(AWARDS_AT_ONCE, *at_once_arguments(called))
        except asyncpg.PostgresError as exc:
            # Nothing was kept: a claim whose score would overflow, a deadlock with a transaction that
            # locks in another order. Each claim then runs on its own, and only its own fails.
            log.warning(
                "a call of the award function for %d claims failed (%s); each runs on its own",
                len(called),
                exc.sqlstate,
            )
            return [None] * len(claims)
        awarded = iter(awarded_at_once(called, rows))
        return [next(awarded) if ok else None for ok in current]

    async def held(self, *, status: str, after: int, limit: int) -> list[HeldAward]:
        """Held awards of a status after `after`, oldest first."""
        async with self._connection() as conn:
            rows = await conn.fetch(OPS.held_list, status, after, limit)
        return [held_award(row) for row in rows]

    async def held_award(self, held_id: int) -> HeldAward | None:
        """One held award, or None."""
        async with self._connection() as conn:
            row = await conn.fetchrow(OPS.held, held_id)
        return None if row is None else held_award(row)

    async def decide(self, decision: Decision) -> tuple[HeldAward, Award | None]:
        """Decide a held award once: one transaction."""
        return await self._write(lambda conn: _run(conn, OPS.decide(decision)))

    async def user(self, user_id: str) -> UserRecord | None:
        """One user's row, or None."""
        async with self._connection() as conn:
            row = await conn.fetchrow(OPS.user, user_id)
        return None if row is None else user_record(row)

    async def write_score(self, write: ScoreWrite) -> WriteOutcome:
        """Apply a trusted write, exactly once per Idempotency-Key: one transaction."""
        return await self._write(
            lambda conn: _run(conn, in_period(write.ends_ms, self.clock, TRUSTED.write_score(write)))
        )

    async def keep_answer(self, service: str, key: str, answer: str) -> None:
        """Keep a trusted write's first answer."""
        await self._write(lambda conn: _run(conn, TRUSTED.keep_answer(service, key, answer)))

    async def attest(self, user_id: str, action_id: str, service: str, now_ms: int) -> int:
        """Record an attestation, once per user and action."""
        return await self._write(lambda conn: _run(conn, OPS.attest(user_id, action_id, service, now_ms)))

    async def standings(self, board: str, period: str) -> list[Standing]:
        """Every user on one period of one board."""
        async with self._connection() as conn:
            rows = await conn.fetch(OPS.standings, board, period)
        return [standing(row) for row in rows]

    async def boards(self) -> list[tuple[str, str]]:
        """Every board in use."""
        async with self._connection() as conn:
            rows = await conn.fetch(CATALOG.boards)
        return [(row[0], row[1]) for row in rows]

    async def retired_boards(self) -> list[tuple[str, str, int]]:
        """Every retired board."""
        async with self._connection() as conn:
            rows = await conn.fetch(CATALOG.retired_boards)
        return [(row[0], row[1], row[2]) for row in rows]

    async def declare_boards(self, declared: dict[str, str]) -> list[str]:
        """Apply the configuration's boards (several processes may start at once: row locks and
        ON CONFLICT keep it to one insert each); the ids of those replaced."""
        return await self._write(lambda conn: _run(conn, CATALOG.declare(declared, now_ms())))

    async def create_board(self, board_id: str, settings: str, by: OperatorAct) -> None:
        """Add a board."""
        await self._write(lambda conn: _run(conn, CATALOG.create_board(board_id, settings, by, now_ms())))

    async def change_board(self, board_id: str, settings: str, by: OperatorAct) -> None:
        """Replace a board's settings."""
        await self._write(lambda conn: _run(conn, CATALOG.change_board(board_id, settings, by, now_ms())))

    async def retire_board(self, board_id: str, by: OperatorAct) -> None:
        """Retire a board."""
        await self._write(lambda conn: _run(conn, CATALOG.retire(board_id, by, now_ms())))

    async def purge_keys(self, created_before_ms: int) -> int:
        """Forget old Idempotency-Keys."""
        async with self._connection() as conn:
            status = await conn.execute(TRUSTED.purge_keys, created_before_ms)
        return int(status.split()[-1])

    async def personal_data(self, user_id: str) -> Kept | None:
        """Every row kept about a user, read in one transaction; None for an unknown user."""
        async with self._transaction() as conn:
            return await _run_rows(conn, read(PERSONAL, user_id))

    async def erase(self, user_id: str, pseudonym: str, now_ms: int) -> list[tuple[str, str]]:
        """Erase a user in one transaction."""

        async def erasing(conn: asyncpg.Connection) -> list[tuple[str, str]]:
            # Not while a sealer runs: it could seal a row under the subject key this renames.
            await conn.execute(f"SELECT pg_advisory_xact_lock($1, {SCHEMA_KEY})", SEALING_LOCK)
            return await _run_rows(conn, erase(PERSONAL, user_id, pseudonym, now_ms))

        return await self._write(erasing)

    async def audit_head(self) -> tuple[int, str]:
        """The audit chain's head, read in one transaction."""
        async with self._transaction() as conn:
            found: tuple[int, str] = await _run_rows(conn, head(CHAIN))
            return found

    async def seal(self, limit: int) -> int:
        """Seal up to `limit` queued rows onto the audit chain, unless another process is sealing
        (then 0); how many were queued."""
        async with self._transaction() as conn:
            if not await conn.fetchval(f"SELECT pg_try_advisory_xact_lock($1, {SCHEMA_KEY})", SEALING_LOCK):
                return 0
            sealed: int = await _run_rows(conn, seal(CHAIN, limit=limit))
            return sealed

    async def _moderate(self, steps: Callable[[], moderation.Steps[T]]) -> T:
        """A moderation act or its reads, in one transaction."""
        return await self._write(lambda conn: _run_rows(conn, steps()))

    async def disqualify(self, act: ModerationAct) -> Places:
        """Disqualify a user; the board periods they have entries on."""
        return await self._moderate(lambda: moderation.set_disqualified(MODERATION, act, disqualified=True))

    async def reinstate(self, act: ModerationAct) -> Places:
        """Reinstate a user; the board periods they have entries on."""
        return await self._moderate(lambda: moderation.set_disqualified(MODERATION, act, disqualified=False))

    async def adjust(self, act: ModerationAct, where: BoardPeriod, *, create: bool) -> Corrected:
        """Correct a user's entry by `act.amount`."""
        return await self._moderate(lambda: moderation.adjust(MODERATION, act, where, create=create))

    async def remove_entry(self, act: ModerationAct, where: BoardPeriod) -> Removal:
        """Take a user's entry off one board period."""
        return await self._moderate(lambda: moderation.remove(MODERATION, act, where))

    async def wipe(self, act: ModerationAct, where: BoardPeriod) -> Removal:
        """Take every entry off one board period."""
        return await self._moderate(lambda: moderation.wipe(MODERATION, act, where))

    async def standings_of(self, user_id: str) -> list[tuple[BoardPeriod, Standing]]:
        """Every entry of a user who is not disqualified."""
        return await self._moderate(lambda: moderation.standings_of(MODERATION, user_id))

    async def disqualified(self) -> list[str]:
        """Every disqualified user."""
        async with self._connection() as conn:
            return [row[0] for row in await conn.fetch(MODERATION.disqualified)]

    async def user_history(self, user_id: str, *, after: int, limit: int) -> UserHistory | None:
        """A user's changes and the acts on them."""
        return await self._moderate(lambda: moderation.history(MODERATION, user_id, after=after, limit=limit))

    async def sweep_changes(self, cursor: int, before_ms: int) -> Swept:
        """Delete one window of old board changes (storage/retention.py) in one transaction."""
        async with self._transaction() as conn:
            return await _run_rows(conn, sweep_changes(RETENTION, cursor, before_ms, SWEEP_WINDOW))

    async def sweep_awards(self, cursor: int, before_ms: int) -> Swept:
        """Delete one window of old awards nothing refers to (storage/retention.py) in one transaction."""
        async with self._transaction() as conn:
            return await _run_rows(conn, sweep_awards(RETENTION, cursor, before_ms, SWEEP_WINDOW))

    async def purge_attestations(self, created_before_ms: int) -> int:
        """Forget unspent attestations made before this time."""
        async with self._connection() as conn:
            status = await conn.execute(OPS.purge_attestations, created_before_ms)
        return int(status.split()[-1])

    async def add_notices(self, drafts: list[NoticeDraft], *, now_ms: int) -> list[Notice]:
        """Keep notices in one statement."""
        async with self._connection() as conn:
            rows = await conn.fetch(
                ADD_NOTICES,
                [d.user_id for d in drafts],
                [d.type for d in drafts],
                [d.data for d in drafts],
                now_ms,
            )
        # Numbered in the order inserted, the drafts' (ORDER BY n.i): the ids sorted are theirs in turn.
        return [
            notice(d, notice_id, now_ms) for d, notice_id in zip(drafts, sorted(row[0] for row in rows), strict=True)
        ]

    async def trim_notices(self, user_ids: list[str], *, keep: int) -> int:
        """Delete these users' notices beyond their newest `keep`, in one statement."""
        async with self._connection() as conn:
            status = await conn.execute(TRIM_NOTICES, user_ids, keep - 1)
        return int(status.split()[-1])

    async def notices(self, user_id: str, *, after: int, since_ms: int, keep: int) -> list[Notice]:
        """A user's kept notices after `after`, oldest first."""
        async with self._connection() as conn:
            rows = await conn.fetch(OPS.kept_notices, user_id, since_ms, keep, after)
        return [kept_notice(row) for row in rows]

    async def purge_notices(self, created_before_ms: int) -> int:
        """Delete notices made before this time."""
        async with self._connection() as conn:
            status = await conn.execute(PURGE_NOTICES, created_before_ms)
        return int(status.split()[-1])

    async def purge_tokens(self, expired_before_ms: int) -> int:
        """Delete token rows past their expiry."""
        async with self._connection() as conn:
            status = await conn.execute(PURGE, expired_before_ms)
        return int(status.split()[-1])
