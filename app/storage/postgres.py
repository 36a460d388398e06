"""PostgreSQL store (asyncpg): the system of record for many processes, same schema as SQLite."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator

import asyncpg

from ..errors import ActionAlreadyCompleted, ServiceUnavailable, TokenAlreadyUsed
from ..records import Award, AwardClaim, TokenGrant, UserRecord
from . import check_unused, refusal

log = logging.getLogger(__name__)

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE users (
            id TEXT PRIMARY KEY,
            username TEXT NOT NULL,
            score BIGINT NOT NULL DEFAULT 0,
            score_seq BIGINT,
            last_score_update BIGINT,
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL
        );
        CREATE INDEX idx_users_score ON users (score DESC, score_seq);
        CREATE TABLE action_tokens (
            nonce TEXT PRIMARY KEY,
            token_hash TEXT NOT NULL UNIQUE,
            user_id TEXT NOT NULL REFERENCES users (id),
            action_type TEXT NOT NULL,
            action_id TEXT NOT NULL,
            score_increment BIGINT NOT NULL,
            issued_at BIGINT NOT NULL,
            expires_at BIGINT NOT NULL,
            used_at BIGINT
        );
        CREATE INDEX idx_action_tokens_user ON action_tokens (user_id);
        CREATE INDEX idx_action_tokens_expires ON action_tokens (expires_at);
        CREATE TABLE score_history (
            id BIGSERIAL PRIMARY KEY,
            user_id TEXT NOT NULL REFERENCES users (id),
            action_type TEXT NOT NULL,
            action_id TEXT NOT NULL,
            score_change BIGINT NOT NULL,
            previous_score BIGINT NOT NULL,
            new_score BIGINT NOT NULL,
            token_nonce TEXT NOT NULL UNIQUE,
            action_token_hash TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            CONSTRAINT score_history_user_action UNIQUE (user_id, action_id)
        );
        CREATE INDEX idx_score_history_created ON score_history (created_at);
        """,
    ),
]

_MIGRATION_LOCK = 0x5C0EB0A2D  # advisory lock: one process migrates at a time

# Connection-level failures: the database is not there right now.
_OUTAGES = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError, TimeoutError)

_UPSERT_USER = (
    "INSERT INTO users (id, username, created_at, updated_at) VALUES ($1, $2, $3, $3) "
    "ON CONFLICT (id) DO UPDATE SET username = EXCLUDED.username, updated_at = EXCLUDED.updated_at "
    "WHERE users.username IS DISTINCT FROM EXCLUDED.username"
)


@contextlib.contextmanager
def _unavailable_on_outage() -> Iterator[None]:
    try:
        yield
    except _OUTAGES:
        raise ServiceUnavailable("The database is unavailable") from None


class PostgresStore:
    """A pool of connections; every write is one transaction."""

    def __init__(self, dsn: str, *, pool_size: int = 10) -> None:
        self.dsn = dsn
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        """Create the pool and apply migrations under an advisory lock."""
        pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=self.pool_size, command_timeout=10)
        try:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)"
                )
                applied = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
                for version, sql in MIGRATIONS:
                    if version not in applied:
                        await conn.execute(sql)
                        await conn.execute(
                            "INSERT INTO schema_migrations VALUES ($1, extract(epoch from now())::bigint)", version
                        )
                        log.info("applied migration %s", version)
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
    async def _transaction(self) -> AsyncIterator[asyncpg.Connection]:
        if self._pool is None:
            raise ServiceUnavailable("The database is not open")
        with _unavailable_on_outage():
            async with self._pool.acquire() as conn, conn.transaction():
                yield conn

    async def ping(self) -> None:
        """Run a trivial query."""
        async with self._transaction() as conn:
            await conn.fetchval("SELECT 1")

    async def grant(self, grant: TokenGrant, *, max_unused: int | None = None) -> None:
        """Record an issued token; refuse an action the user already completed, and a user who
        already holds `max_unused` unexpired unused tokens. A refusal rolls everything back."""
        async with self._transaction() as conn:
            # The upsert locks the user's row until commit, updated or not (ON CONFLICT DO UPDATE
            # locks every conflicting row; a new row blocks other inserts of its id): one grant of
            # a user at a time, so the count below cannot be overtaken.
            await conn.execute(_UPSERT_USER, grant.user_id, grant.username, grant.issued_ms)
            done = await conn.fetchval(
                "SELECT 1 FROM score_history WHERE user_id = $1 AND action_id = $2", grant.user_id, grant.action_id
            )
            if done:
                raise ActionAlreadyCompleted()
            if max_unused is not None:
                unused = await conn.fetchrow(
                    "SELECT COUNT(*), MIN(expires_at) FROM action_tokens "
                    "WHERE user_id = $1 AND used_at IS NULL AND expires_at > $2",
                    grant.user_id,
                    grant.issued_ms,
                )
                check_unused(unused[0], unused[1], now_ms=grant.issued_ms, max_unused=max_unused)
            await conn.execute(
                "INSERT INTO action_tokens (nonce, token_hash, user_id, action_type, action_id, score_increment, "
                "issued_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                grant.nonce,
                grant.token_hash,
                grant.user_id,
                grant.action_type,
                grant.action_id,
                grant.score_increment,
                grant.issued_ms,
                grant.expires_ms,
            )

    async def award(self, claim: AwardClaim) -> Award:
        """Consume the token (a conditional update), insert history, raise the score: one transaction."""
        async with self._transaction() as conn:
            token = await conn.fetchrow(
                "UPDATE action_tokens SET used_at = $2 WHERE nonce = $1 AND used_at IS NULL AND user_id = $3 "
                "AND action_type = $4 AND action_id = $5 AND issued_at <= $6 AND expires_at > $2 "
                "RETURNING action_type, score_increment, token_hash",
                claim.nonce,
                claim.now_ms,
                claim.user_id,
                claim.action_type,
                claim.action_id,
                claim.now_ms - claim.min_elapsed_ms,
            )
            if token is None:
                # Say why; the transaction rolls back.
                row = await conn.fetchrow(
                    "SELECT user_id, action_type, action_id, used_at, expires_at FROM action_tokens WHERE nonce = $1",
                    claim.nonce,
                )
                raise refusal(claim, None if row is None else tuple(row))
            await conn.execute(_UPSERT_USER, claim.user_id, claim.username, claim.now_ms)
            previous = await conn.fetchval("SELECT score FROM users WHERE id = $1 FOR UPDATE", claim.user_id)
            increment = token["score_increment"]
            try:
                async with conn.transaction():  # a savepoint, so the error is ours to name
                    seq = await conn.fetchval(
                        "INSERT INTO score_history (user_id, action_type, action_id, score_change, previous_score, "
                        "new_score, token_nonce, action_token_hash, created_at) "
                        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                        claim.user_id,
                        token["action_type"],
                        claim.action_id,
                        increment,
                        previous,
                        previous + increment,
                        claim.nonce,
                        token["token_hash"],
                        claim.now_ms,
                    )
            except asyncpg.UniqueViolationError as exc:
                if exc.constraint_name == "score_history_user_action":
                    raise ActionAlreadyCompleted() from None
                raise TokenAlreadyUsed() from None
            await conn.execute(
                "UPDATE users SET score = $2, score_seq = $3, last_score_update = $4, updated_at = $4 WHERE id = $1",
                claim.user_id,
                previous + increment,
                seq,
                claim.now_ms,
            )
        return Award(
            user_id=claim.user_id,
            username=claim.username,
            action_type=token["action_type"],
            action_id=claim.action_id,
            previous_score=previous,
            new_score=previous + increment,
            score_increment=increment,
            seq=seq,
            awarded_ms=claim.now_ms,
        )

    async def user(self, user_id: str) -> UserRecord | None:
        """One user's row, or None."""
        async with self._transaction() as conn:
            row = await conn.fetchrow(
                "SELECT id, username, score, score_seq, last_score_update FROM users WHERE id = $1", user_id
            )
        return (
            None
            if row is None
            else UserRecord(user_id=row[0], username=row[1], score=row[2], seq=row[3], updated_ms=row[4])
        )

    async def standings(self) -> list[UserRecord]:
        """Every user with at least one award."""
        async with self._transaction() as conn:
            rows = await conn.fetch(
                "SELECT id, username, score, score_seq, last_score_update FROM users WHERE score_seq IS NOT NULL"
            )
        return [UserRecord(user_id=r[0], username=r[1], score=r[2], seq=r[3], updated_ms=r[4]) for r in rows]

    async def purge_tokens(self, expired_before_ms: int) -> int:
        """Delete token rows past their expiry."""
        async with self._transaction() as conn:
            status = await conn.execute("DELETE FROM action_tokens WHERE expires_at < $1", expired_before_ms)
        return int(status.split()[-1])
