"""`run.py backup PATH` and `run.py restore PATH`: the embedded database's backups, each
answering in one line. The work on the file is storage/backup.py's; this module says what the
configured set-up needs around it (PostgreSQL: its own tools; Redis: a board rebuilt after a restore)."""

from __future__ import annotations

from pathlib import Path

import redis

from .settings import FileSettings
from .storage.backup import BackupError, backup, restore

POSTGRES = (
    "storage.database_url is set: the data is in PostgreSQL, which this command does not copy; "
    "{how} (README: Backups and restore)"
)


def _sqlite_only(settings: FileSettings, how: str) -> None:
    if settings.storage.database_url:
        raise BackupError(POSTGRES.format(how=how))
    if settings.storage.sqlite_path == ":memory:":
        raise BackupError("storage.sqlite_path is :memory:, nothing on disk")


def backup_command(settings: FileSettings, path: str, *, force: bool = False) -> str:
    """Copy the configured SQLite database to `path` while servers run; the line to print."""
    _sqlite_only(settings, "back it up with pg_dump, or with a base backup and WAL archiving (point-in-time recovery)")
    summary = backup(settings.storage.sqlite_path, path, overwrite=force)
    return f"backup: wrote {summary.path.resolve()} ({summary}) from {Path(settings.storage.sqlite_path).resolve()}"


def restore_command(settings: FileSettings, path: str) -> str:
    """Replace the configured SQLite database with the backup at `path`, no server running; the
    line to print. With Redis configured, the board kept there is deleted (with everything else
    under the prefix, all of it derived), so the first server rebuilds it from the restored file:
    left alone, its newer scores would win over the database's."""
    _sqlite_only(settings, "restore it with pg_restore, or recover a base backup to a point in time")
    storage = settings.storage
    client = None
    if storage.redis_url:
        client = redis.Redis.from_url(storage.redis_url, socket_connect_timeout=2, socket_timeout=10)
        try:
            client.ping()
        except (redis.RedisError, OSError) as exc:
            client.close()
            raise BackupError(
                f"Redis ({storage.redis_prefix}:*) does not answer ({exc}): its board would outlive the "
                "restore; start Redis and run the restore again; nothing was changed"
            ) from None
    try:
        restored = restore(path, storage.sqlite_path)
        line = (
            f"restore: {restored.summary.path.resolve()} now holds {restored.source.resolve()} ({restored.summary}); "
            + (
                f"the replaced database is kept at {restored.aside.resolve()}"
                if restored.aside is not None
                else "there was no database there before"
            )
        )
        if client is not None:
            try:
                deleted = _forget(client, storage.redis_prefix)
            except (redis.RedisError, OSError) as exc:
                raise BackupError(
                    f"{line}; but deleting the Redis keys {storage.redis_prefix}:* failed ({exc}): "
                    "delete them before starting a server"
                ) from None
            line += f"; {deleted} Redis keys under {storage.redis_prefix}:* deleted (the board is rebuilt at start)"
    finally:
        if client is not None:
            client.close()
    return line


def _forget(client: redis.Redis, prefix: str) -> int:
    """Delete every key under `prefix:` (SCAN, never FLUSHDB: other deployments may share the database)."""
    deleted = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            deleted += int(client.unlink(*batch))
            batch.clear()
    if batch:
        deleted += int(client.unlink(*batch))
    return deleted
