"""The schema, written once and rendered for each database: what differs between SQLite and
PostgreSQL is a `Dialect` (column types, parameters, row locks), never a second copy of a table."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dialect:
    """What the shared schema and statements leave to each database."""

    name: str
    bigint: str  # a 64-bit integer column
    serial_key: str  # an integer primary key the database numbers, never reusing a number
    parameter: str  # "?" or "$": shared text writes `$1`, SQLite reads `?1` (numbered, so reusable)
    # Writers lock rows (PostgreSQL) rather than the whole database (SQLite's BEGIN IMMEDIATE):
    # a read that decides a write locks its row, and a grant locks its user before counting.
    row_locks: bool
    # SQLite files were created with the (user_id, action_id) key unnamed: their schema text stays so.
    constraint_names: bool
    # After rows are copied into a table with their ids, the numbering must go on after them
    # (SQLite's AUTOINCREMENT does so by itself).
    reseed: str
    # Statements may write through common table expressions (PostgreSQL): an award's history row
    # and entry on a board are one statement, one round trip, instead of two.
    writing_ctes: bool

    def sql(self, text: str) -> str:
        """A shared statement (`$n` parameters, `{row_lock}` after a read that decides a write,
        `{share_lock}` after one that a change of the row must wait for) in this dialect."""
        return text.replace("$", self.parameter).format(
            row_lock=" FOR UPDATE" if self.row_locks else "", share_lock=" FOR SHARE" if self.row_locks else ""
        )


SQLITE = Dialect(
    name="sqlite",
    bigint="INTEGER",
    serial_key="INTEGER PRIMARY KEY AUTOINCREMENT",
    parameter="?",
    row_locks=False,
    constraint_names=False,
    reseed="",
    writing_ctes=False,
)
POSTGRES = Dialect(
    name="postgres",
    bigint="BIGINT",
    serial_key="BIGSERIAL PRIMARY KEY",
    parameter="$",
    row_locks=True,
    constraint_names=True,
    reseed="SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT COALESCE(MAX(id), 0) + 1 FROM {table}), false)",
    writing_ctes=True,
)

MIGRATIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at {bigint} NOT NULL)"
)
APPLIED = "SELECT version FROM schema_migrations"
RECORD = "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)"

# Versioned migrations; each runs once, in order, recorded in schema_migrations. The text is kept
# byte for byte as first applied, indentation included: SQLite stores each CREATE's text in
# sqlite_master, and an existing file must compare equal to a new one.
_MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE users (
            id TEXT PRIMARY KEY,
            username TEXT NOT NULL,
            score {bigint} NOT NULL DEFAULT 0,
            score_seq {bigint},
            last_score_update {bigint},
            created_at {bigint} NOT NULL,
            updated_at {bigint} NOT NULL
        );
        CREATE INDEX idx_users_score ON users (score DESC, score_seq);
        CREATE TABLE action_tokens (
            nonce TEXT PRIMARY KEY,
            token_hash TEXT NOT NULL UNIQUE,
            user_id TEXT NOT NULL REFERENCES users (id),
            action_type TEXT NOT NULL,
            action_id TEXT NOT NULL,
            score_increment {bigint} NOT NULL,
            issued_at {bigint} NOT NULL,
            expires_at {bigint} NOT NULL,
            used_at {bigint}
        );
        CREATE INDEX idx_action_tokens_user ON action_tokens (user_id);
        CREATE INDEX idx_action_tokens_expires ON action_tokens (expires_at);
        CREATE TABLE score_history (
            id {serial_key},
            user_id TEXT NOT NULL REFERENCES users (id),
            action_type TEXT NOT NULL,
            action_id TEXT NOT NULL,
            score_change {bigint} NOT NULL,
            previous_score {bigint} NOT NULL,
            new_score {bigint} NOT NULL,
            token_nonce TEXT NOT NULL UNIQUE,
            action_token_hash TEXT NOT NULL,
            created_at {bigint} NOT NULL,
            {user_action_key}UNIQUE (user_id, action_id)
        );
        CREATE INDEX idx_score_history_created ON score_history (created_at);
        """,
    ),
    (
        # Many boards. Scores move from `users` (whose score columns are no longer written) to one
        # entry per board, period and user; every change of an entry is a row of board_history,
        # whose id is the entry's `seq`. The scores of before go to the board `global`, period
        # `all`, each award kept as a history row under its own id, so that seqs stay in order.
        # board_history is read by id only (an entry's seq): no other index for writes to keep.
        2,
        """
        CREATE TABLE boards (
            id TEXT PRIMARY KEY,
            settings TEXT NOT NULL,
            declared TEXT,
            created_at {bigint} NOT NULL,
            updated_at {bigint} NOT NULL,
            retired_at {bigint}
        );
        CREATE TABLE board_entries (
            board TEXT NOT NULL,
            period TEXT NOT NULL,
            user_id TEXT NOT NULL REFERENCES users (id),
            score {bigint} NOT NULL,
            subscore {bigint},
            seq {bigint} NOT NULL,
            updated_at {bigint} NOT NULL,
            metadata TEXT,
            PRIMARY KEY (board, period, user_id)
        );
        CREATE INDEX idx_board_entries_user ON board_entries (user_id);
        CREATE TABLE board_history (
            id {serial_key},
            board TEXT NOT NULL,
            period TEXT NOT NULL,
            user_id TEXT NOT NULL REFERENCES users (id),
            award_id {bigint} REFERENCES score_history (id),
            service TEXT,
            value {bigint} NOT NULL,
            subscore {bigint},
            previous_score {bigint},
            new_score {bigint} NOT NULL,
            metadata TEXT,
            created_at {bigint} NOT NULL
        );
        CREATE TABLE idempotency_keys (
            service TEXT NOT NULL,
            key TEXT NOT NULL,
            request_hash TEXT NOT NULL,
            outcome TEXT NOT NULL,
            answer TEXT,
            created_at {bigint} NOT NULL,
            PRIMARY KEY (service, key)
        );
        CREATE INDEX idx_idempotency_keys_created ON idempotency_keys (created_at);
        INSERT INTO board_history (id, board, period, user_id, award_id, value, previous_score, new_score, created_at)
            SELECT id, 'global', 'all', user_id, id, score_change, previous_score, new_score, created_at
            FROM score_history;
        {reseed_board_history};
        INSERT INTO board_entries (board, period, user_id, score, seq, updated_at)
            SELECT 'global', 'all', id, score, score_seq, last_score_update FROM users WHERE score_seq IS NOT NULL
        """,
    ),
    (
        # Notices to users (`overtaken`), kept for a while: read by user, newest first; purged by age.
        3,
        """
        CREATE TABLE notices (
            id {serial_key},
            user_id TEXT NOT NULL,
            type TEXT NOT NULL,
            data TEXT NOT NULL,
            created_at {bigint} NOT NULL
        );
        CREATE INDEX idx_notices_user ON notices (user_id, id);
        CREATE INDEX idx_notices_created ON notices (created_at)
        """,
    ),
    (
        # Trusted servers' attestations of a user's action, each spent by the award that needs it;
        # those never spent are purged by age. No reference to users: a game server may attest
        # before the player's first call.
        4,
        """
        CREATE TABLE attestations (
            user_id TEXT NOT NULL,
            action_id TEXT NOT NULL,
            service TEXT NOT NULL,
            created_at {bigint} NOT NULL,
            PRIMARY KEY (user_id, action_id)
        );
        CREATE INDEX idx_attestations_created ON attestations (created_at)
        """,
    ),
    (
        # Awards held for an operator (cheat quarantine): each has its score_history row (its token
        # spent, its action completed), and lands on `boards` (JSON, the board periods of when it
        # was held) only when approved. Listed by status, oldest first. An award's count in its
        # rolling hour reads score_history by user (the (user_id, action_id) key's index).
        5,
        """
        CREATE TABLE held_awards (
            id {serial_key},
            award_id {bigint} NOT NULL UNIQUE REFERENCES score_history (id),
            user_id TEXT NOT NULL REFERENCES users (id),
            action_type TEXT NOT NULL,
            action_id TEXT NOT NULL,
            score {bigint} NOT NULL,
            boards TEXT NOT NULL,
            status TEXT NOT NULL,
            created_at {bigint} NOT NULL,
            decided_by TEXT,
            reason TEXT,
            decided_at {bigint}
        );
        CREATE INDEX idx_held_awards_status ON held_awards (status, id)
        """,
    ),
    (
        # Moderation. Operators' actions, append-only (numbered by `id`, so that a hash chain can run
        # over them), read by the user they name, newest first. A disqualified user keeps every row:
        # `disqualified_at` keeps them off the rank indexes and out of every rebuild, so reinstating
        # them restores their entries as they were. A correction (adjust, removal, wipe) is a
        # board_history row naming the moderation row that made it, never an edit of older rows.
        6,
        """
        ALTER TABLE users ADD COLUMN disqualified_at {bigint};
        ALTER TABLE board_history ADD COLUMN moderation_id {bigint};
        CREATE TABLE moderation (
            id {serial_key},
            action TEXT NOT NULL,
            operator TEXT NOT NULL,
            reason TEXT NOT NULL,
            user_id TEXT,
            board TEXT,
            period TEXT,
            amount {bigint},
            details TEXT,
            created_at {bigint} NOT NULL
        );
        CREATE INDEX idx_moderation_user ON moderation (user_id, id)
        """,
    ),
    (
        # The audit chain (storage/chain.py): rows of the history made final and not sealed yet
        # (queued by triggers, created at start from chain.CHAINED), the chain itself, each
        # subject's random key (what a row's digest holds instead of a user id), and the checkpoints
        # a purge of the chain's prefix leaves. An entry keeps when its row became final (queued),
        # which says whether retention may have deleted it. The history kept before this version is
        # queued for sealing.
        7,
        """
        CREATE TABLE audit_queue (
            tbl TEXT NOT NULL,
            row_id {bigint} NOT NULL,
            queued_at {bigint} NOT NULL,
            PRIMARY KEY (tbl, row_id)
        );
        CREATE TABLE audit_chain (
            seq {bigint} PRIMARY KEY,
            tbl TEXT NOT NULL,
            row_id {bigint} NOT NULL,
            digest TEXT NOT NULL,
            hash TEXT NOT NULL,
            final_at {bigint} NOT NULL,
            UNIQUE (tbl, row_id)
        );
        CREATE TABLE audit_subjects (
            subject TEXT PRIMARY KEY,
            key TEXT NOT NULL
        );
        CREATE TABLE audit_checkpoints (
            seq {bigint} PRIMARY KEY,
            hash TEXT NOT NULL,
            made_at {bigint} NOT NULL
        );
        INSERT INTO audit_queue (tbl, row_id, queued_at) SELECT 'score_history', id, created_at FROM score_history;
        INSERT INTO audit_queue (tbl, row_id, queued_at) SELECT 'board_history', id, created_at FROM board_history;
        INSERT INTO audit_queue (tbl, row_id, queued_at)
            SELECT 'held_awards', id, decided_at FROM held_awards WHERE status <> 'pending'
        """,
    ),
    (
        # Cheat rules: which rules held an award (JSON list; those held before were all held by
        # hold_over_per_hour), and the indexes that let each rule read only the user's own rows:
        # score_history by user, action type and time (counts, the last completion, velocity
        # windows), board_history by user, board and time (the score an hour on a board), and
        # held_awards by user and time (repeat offenders' back-off). The first two also hold what
        # the sums add (score_change; award_id and value): the rules read the index alone.
        8,
        """
        ALTER TABLE held_awards ADD COLUMN rules TEXT NOT NULL DEFAULT '["hold_over_per_hour"]';
        CREATE INDEX idx_score_history_user_type ON score_history (user_id, action_type, created_at, score_change);
        CREATE INDEX idx_board_history_user ON board_history (user_id, board, created_at, award_id, value);
        CREATE INDEX idx_held_awards_user ON held_awards (user_id, created_at)
        """,
    ),
    (
        # Retention (storage/retention.py): an award's row may be deleted once no board change
        # refers to it, which the index finds (and the foreign key's check needs, else every deleted
        # award reads board_history whole); the (user, actionId) pairs of deleted awards are kept.
        9,
        """
        CREATE INDEX idx_board_history_award ON board_history (award_id);
        CREATE TABLE completed_actions (
            user_id TEXT NOT NULL,
            action_id TEXT NOT NULL,
            completed_at {bigint} NOT NULL,
            PRIMARY KEY (user_id, action_id)
        )
        """,
    ),
]


def render(text: str, dialect: Dialect) -> str:
    """Schema text with the dialect's types."""
    return text.format(
        bigint=dialect.bigint,
        serial_key=dialect.serial_key,
        user_action_key="CONSTRAINT score_history_user_action " if dialect.constraint_names else "",
        reseed_board_history=dialect.reseed.format(table="board_history"),
    )


def migrations(dialect: Dialect) -> list[tuple[int, list[str]]]:
    """Each migration's version and statements, in order, as the dialect writes them."""
    return [(version, [s for s in render(text, dialect).split(";") if s.strip()]) for version, text in _MIGRATIONS]
