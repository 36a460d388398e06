"""What the many-boards tests share: a configuration with boards of every kind, trusted services,
a clock the tests move, and the client calls of the board routes."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from app import create_app
from app.api.keys import HUB
from app.config import Config

from ..conftest import envelope, make_config
from ..live_client import messages_within

RACER_KEY = "racer-service-key-0123456789abcdef"
LIMITED_KEY = "limited-service-key-0123456789abcdef"
ATTEST_KEY = "attest-service-key-0123456789abcdef"
ADMIN = "/api/v1/admin"  # the operators' routes
CHEAT = "mallory"  # the user the operators act on


def sha(key: str) -> str:
    """The SHA-256 a configuration keeps of a service key."""
    return hashlib.sha256(key.encode()).hexdigest()


BOARDS: dict[str, Any] = {
    "global": {"title": "All time"},
    "weekly": {"title": "This week", "reset": "weekly", "keep_periods": 2},
    "daily": {"reset": "daily", "timezone": "Europe/Berlin", "keep_periods": 1},
    "trial": {"title": "Time trial", "order": "asc", "operator": "best", "format": "duration_ms"},
    "high": {"operator": "best"},
    "latest": {"operator": "set"},
}
ACTIONS: dict[str, Any] = {
    "COMPLETE_QUEST": {"score": 100, "boards": ["global", "weekly", "daily"]},
    "DEFEAT_BOSS": {"score": 500},
    "WEEKLY_ONLY": {"score": 7, "boards": ["weekly"]},
}
SERVICES: dict[str, Any] = {
    "racer": {"key_sha256": sha(RACER_KEY)},
    "limited": {"key_sha256": sha(LIMITED_KEY), "boards": ["latest"]},
    "attester": {"key_sha256": sha(ATTEST_KEY), "scopes": ["actions:attest"]},
}
# Wednesday 2026-12-02 12:00 UTC: week 2026-W49 (Monday 2026-11-30 .. Monday 2026-12-07).
WEDNESDAY_MS = int(datetime(2026, 12, 2, 12, 0, tzinfo=UTC).timestamp() * 1000)
NEXT_MONDAY_MS = int(datetime(2026, 12, 7, 0, 0, tzinfo=UTC).timestamp() * 1000)


# How far short of next Monday a test of a period-end alarm first watches a board: the alarm,
# set from that reading, is then due this soon in real time.
ALARM_LEAD_MS = 50


class Clock:
    """Milliseconds since the epoch, moved by the test."""

    def __init__(self, now_ms: int = WEDNESDAY_MS) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms

    def short_of_monday(self) -> None:
        """Stand ALARM_LEAD_MS short of next Monday."""
        self.now_ms = NEXT_MONDAY_MS - ALARM_LEAD_MS

    async def reach_monday(self) -> None:
        """Move to next Monday once the real time it stood short of it has passed, as a running
        clock would have: an alarm set from the earlier reading is then due."""
        await asyncio.sleep(ALARM_LEAD_MS / 1000)
        self.now_ms = NEXT_MONDAY_MS


class HeldBack:
    """A store's method patched to commit, then hold its answer until `release`: a write committed
    and not yet placed on its rank index."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, store: object, method: str) -> None:
        self._committed, self._go_on = asyncio.Event(), asyncio.Event()
        commit = getattr(store, method)

        async def held(*args: Any, **kwargs: Any) -> Any:
            answer = await commit(*args, **kwargs)
            self._committed.set()
            await self._go_on.wait()
            return answer

        monkeypatch.setattr(store, method, held)

    async def committed(self, write: asyncio.Task[Any]) -> None:
        """Wait until the write has committed (failing with its answer if it ended before)."""
        waiting = asyncio.ensure_future(self._committed.wait())
        await asyncio.wait([write, waiting], timeout=5, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        assert self._committed.is_set(), write.result() if write.done() else "the write did not commit"

    def release(self) -> None:
        """Let the write go on."""
        self._go_on.set()


async def no_period_end_while_held(client: AppClient, clock: Clock, ws: Any) -> None:
    """Past next Monday with a write held back: the board looks again at once (whenever its alarm
    rings) and sends no `period_ended` while the write is on its way."""
    await clock.reach_monday()
    client.app[HUB].resync()
    early = await messages_within(ws, 0.1)
    assert "period_ended" not in [m["type"] for m in early], early


def boards_config(db_path: Path, storage: dict[str, Any], **sections: Any) -> Config:
    """The test configuration with the boards, actions and services above."""
    tables = {"boards": BOARDS, "services": SERVICES, "actions": ACTIONS, **sections}
    return make_config(db_path, storage, **tables)


AppClient = TestClient[web.Request, web.Application]
MakeBoardsClient = Callable[..., Awaitable[AppClient]]


class Boards:
    """The board routes as a client drives them; each call asserts the envelope."""

    def __init__(self, client: AppClient, bearer: Callable[..., dict[str, str]]) -> None:
        self.client = client
        self.bearer = bearer

    async def get(self, path: str, status: int = 200, **params: Any) -> Any:
        resp = await self.client.get(path, params={k.rstrip("_"): str(v) for k, v in params.items()})
        body = await envelope(resp)
        assert resp.status == status, body
        return body["data"] if body["success"] else body["error"]

    async def write(
        self,
        board: str,
        body: dict[str, Any],
        *,
        key: str | None = "k1",
        service_key: str = RACER_KEY,
        status: int = 200,
    ) -> Any:
        headers = {"Authorization": f"Bearer {service_key}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        resp = await self.client.post(f"/api/v1/boards/{board}/scores", json=body, headers=headers)
        answer = await envelope(resp)
        assert resp.status == status, answer
        return answer["data"] if answer["success"] else answer["error"]

    async def lookup(self, board: str, body: dict[str, Any], status: int = 200) -> Any:
        resp = await self.client.post(f"/api/v1/boards/{board}/lookup", json=body)
        answer = await envelope(resp)
        assert resp.status == status, answer
        return answer["data"] if answer["success"] else answer["error"]

    async def top(self, board: str, **params: Any) -> list[tuple[str, int]]:
        data = await self.get(f"/api/v1/boards/{board}/top", **params)
        return [(e["userId"], e["score"]) for e in data["leaderboard"]]

    async def state(self) -> dict[str, Any]:
        """Every board's readable periods (with their sizes) and every entry of each, as the API shows them."""
        seen: dict[str, Any] = {}
        for board in BOARDS:
            periods = await self.get(f"/api/v1/boards/{board}/periods")
            seen[board] = periods
            for period in periods["periods"]:
                ranks = await self.get(f"/api/v1/boards/{board}/ranks", from_=1, limit=100, period=period["id"])
                seen[f"{board}/{period['id']}"] = ranks
        return seen


def app_with_clock(config: Config, clock: Clock) -> web.Application:
    """The app over `config`, its periods decided by `clock`."""
    return create_app(config, clock=clock)
