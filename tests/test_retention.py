"""Retention of the award history (`storage.history_retention_days`), against SQLite and PostgreSQL:
what is older than the kept days goes, window by window; what entries point at, what a kept row or a
pending held award refers to, and every (user, actionId) completed, stay."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from app.config import ConfigError, load_config
from app.errors import ActionAlreadyCompleted
from app.records import Decision
from app.retention import DAY_MS, RESCAN_MS, Retention
from app.storage import Store

from .stores import claim, grant, score

DAY = DAY_MS


async def _award(store: Store, user: str, action: str, at: int, *, hold: bool = False) -> None:
    nonce = f"{user}-{action}"
    await store.grant(grant(nonce, user=user, action=action, issued=at))
    award_claim = claim(nonce, user=user, action=action, now=at + 1)
    await store.award(msgspec.structs.replace(award_claim, hold_over=0) if hold else award_claim)


async def _rows(store: Store, table: str) -> list[tuple[Any, ...]]:
    """Every row of a history table, read through the store's own connection."""
    kept = await store.personal_data("u")
    assert kept is not None
    return {"awards": kept.awards, "changes": kept.changes, "held": kept.held}[table]


async def test_old_changes_go_but_those_entries_point_at(store: Store) -> None:
    for i in range(5):
        await _award(store, "u", f"old{i}", 1000 + i)
    await _award(store, "u", "new", 10 * DAY)
    await _award(store, "v", "only", 1000)  # v's one award: its change is v's entry's seq

    retention = Retention(store, 1, lambda: 10 * DAY + 5)
    assert await retention.purge() == 10  # u's 5 old changes and their 5 awards

    changes = await _rows(store, "changes")
    assert [c[3] for c in changes] == [a[0] for a in await _rows(store, "awards")]  # each kept change's award kept
    assert len(changes) == 1 and changes[0][-1] == 10 * DAY + 1
    assert await score(store, "u") == 60 and await score(store, "v") == 10  # scores untouched
    assert await retention.purge() == 0  # nothing more is old enough


async def test_an_action_completed_before_the_kept_history_cannot_be_completed_again(store: Store) -> None:
    await _award(store, "u", "quest", 1000)
    await _award(store, "u", "later", 2000)  # moves u's entry on, so the first change can go
    assert await Retention(store, 1, lambda: 3 * DAY).purge() == 2
    assert [a[2] for a in await _rows(store, "awards")] == ["later"]
    with pytest.raises(ActionAlreadyCompleted):
        await store.grant(grant("again", action="quest", issued=3 * DAY))
    kept = await store.personal_data("u")
    assert kept is not None and kept.completed == [("quest", 1001)]


async def test_rows_younger_than_the_kept_days_stay(store: Store) -> None:
    for i in range(3):
        await _award(store, "u", f"a{i}", DAY + i)
    assert await Retention(store, 1, lambda: 2 * DAY).purge() == 0  # the oldest is exactly one day old
    assert len(await _rows(store, "awards")) == 3
    assert await Retention(store, 0, lambda: 100 * DAY).purge() == 0  # 0 days: kept for ever
    assert len(await _rows(store, "changes")) == 3


async def test_a_pending_held_award_keeps_its_row_and_a_decided_old_one_goes(store: Store) -> None:
    await _award(store, "u", "pending", 1000, hold=True)
    await _award(store, "u", "decided", 1100, hold=True)
    await _award(store, "u", "landed", 1200)
    pending, decided = sorted(await store.held(status="pending", after=0, limit=10), key=lambda h: h.id)
    await store.decide(Decision(held_id=decided.id, approve=False, operator="op", reason="bot", now_ms=1300))
    assert await Retention(store, 1, lambda: 5 * DAY).purge() == 2  # the decided held award and its award row
    assert [h[2] for h in await _rows(store, "held")] == ["pending"]
    assert sorted(a[2] for a in await _rows(store, "awards")) == ["landed", "pending"]
    assert (await store.held_award(pending.id)) is not None


async def test_a_backlog_goes_over_several_windows_and_rounds(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("app.retention.MAX_WINDOWS", 3)
    users = [f"p{n}" for n in range(13)]
    for start in range(0, 1100, 100):  # more than one window in either store (200 in SQLite, 1000 in PostgreSQL)
        await asyncio.gather(*(_award(store, users[i % 13], f"a{i}", 1000 + i) for i in range(start, start + 100)))
    retention = Retention(store, 1, lambda: 10 * DAY)
    total = 0
    while deleted := await retention.purge():
        total += deleted
    assert total == 2 * (1100 - 13)  # every change but each entry's last, and their awards
    assert [await score(store, user) for user in users] == [
        sum(10 for i in range(1100) if i % 13 == n) for n in range(13)
    ]


async def test_a_change_an_entry_no_longer_points_at_goes_after_the_rescan(store: Store) -> None:
    now = [10 * DAY]
    await _award(store, "u", "first", 1000)
    retention = Retention(store, 1, lambda: now[0])
    assert await retention.purge() == 0  # the entry points at it
    await _award(store, "u", "second", 10 * DAY)
    now[0] += 60_000
    assert await retention.purge() == 0  # the cursor is past it until the next sweep from the start
    now[0] += RESCAN_MS
    assert await retention.purge() == 2
    assert [a[2] for a in await _rows(store, "awards")] == ["second"]


async def test_an_erasure_renames_the_completed_actions(store: Store) -> None:
    await _award(store, "u", "quest", 1000)
    await _award(store, "u", "later", 2000)
    await Retention(store, 1, lambda: 3 * DAY).purge()
    with pytest.raises(ActionAlreadyCompleted):
        await store.grant(grant("before", action="quest", issued=3 * DAY))
    await store.erase("u", "erased-x", 3 * DAY)
    # The pair now names the pseudonym: the id, used again, starts afresh.
    await store.grant(grant("back", action="quest", issued=3 * DAY))
    kept = await store.personal_data("u")
    assert kept is not None and kept.completed == []


def test_the_kept_days_are_validated(tmp_path: Any) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[storage]\nhistory_retention_days = -1\n[actions.A]\nscore = 1\n")
    with pytest.raises(ConfigError, match="history_retention_days"):
        load_config(path, {})
    path.write_text("[storage]\nhistory_retention_days = 30\n[actions.A]\nscore = 1\n")
    assert load_config(path, {}).storage.history_retention_days == 30
