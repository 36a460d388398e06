"""The many-boards tests' app: the boards, actions and services of scene.py over each storage
set-up, its periods decided by a clock the test moves. `client` (and so `flow`) is that app here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.auth import UserAuth

from .scene import AppClient, Boards, Clock, app_with_clock, boards_config


@pytest.fixture
def clock() -> Clock:
    """The app's clock: Wednesday of ISO week 2026-W49, noon UTC."""
    return Clock()


@pytest.fixture
async def client(aiohttp_client: Any, db_path: Path, storage: dict[str, Any], clock: Clock) -> AppClient:
    """An app with the boards of scene.py over this test's storage."""
    app_client: AppClient = await aiohttp_client(app_with_clock(boards_config(db_path, storage), clock))
    return app_client


@pytest.fixture
def boards(client: AppClient, bearer: Any) -> Boards:
    """The board routes against `client`."""
    return Boards(client, bearer)


@pytest.fixture
def operator(user_auth: UserAuth) -> dict[str, str]:
    """An operator's Authorization header."""
    return {"Authorization": f"Bearer {user_auth.issue('ops-1', name='Ops', roles=('admin',))}"}
