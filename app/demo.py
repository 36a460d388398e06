"""Demo players: simulated users who go through the real initialize -> update flow over HTTP."""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import AsyncIterator, Callable

import aiohttp
import msgspec
from aiohttp import web

from .auth import UserAuth
from .config import Config
from .tasks import Background, running

log = logging.getLogger(__name__)

NAMES = [
    "Ada", "Brook", "Cyrus", "Dagny", "Ezra", "Freya", "Gus", "Hana", "Ivo", "Juno", "Kai", "Lumi",
    "Milo", "Nia", "Otto", "Pia",
]  # fmt: skip


def demo_config(config: Config) -> Config:
    """The configuration a demo runs with: its own database file, and a per-IP limit that lets
    every simulated player (all on 127.0.0.1) through."""
    settings = config.settings
    storage = settings.storage
    if storage.sqlite_path == "./data/scoreboard.db":
        storage = msgspec.structs.replace(storage, sqlite_path="./data/demo.db")
    limits = msgspec.structs.replace(
        settings.limits, ip_requests_per_minute=max(settings.limits.ip_requests_per_minute, 100_000)
    )
    return msgspec.structs.replace(config, settings=msgspec.structs.replace(settings, storage=storage, limits=limits))


async def play(base_url: str, user_id: str, name: str, config: Config, *, rng: random.Random) -> None:
    """One player: start an action, take a while, complete it, forever; within the rate limits."""
    auth = UserAuth.for_config(config)
    ttl = min(3600, config.auth.max_lifetime_seconds)
    # One initialize and one update per round: both per-user limits respected.
    spacing = 60.0 / min(config.limits.updates_per_minute, config.limits.initializes_per_minute)
    loop = asyncio.get_running_loop()
    next_update = loop.time() + rng.uniform(0, spacing)
    count = 0
    async with aiohttp.ClientSession(base_url) as http:
        while True:
            # A fresh bearer each round, as a game client refreshes its own: a demo outlives any one.
            headers = {"Authorization": f"Bearer {auth.issue(user_id, name=name, ttl_seconds=ttl)}"}
            action_type = rng.choice(list(config.actions))
            count += 1
            action_id = f"{action_type.lower()}-{rng.getrandbits(32):08x}-{count}"
            try:
                async with http.post(
                    "/api/v1/actions/initialize",
                    json={"actionType": action_type, "actionId": action_id},
                    headers=headers,
                ) as resp:
                    body = await resp.json()
                if not body.get("success"):
                    await asyncio.sleep(spacing)
                    continue
                playing = max(config.actions[action_type].min_seconds, rng.uniform(0.5, 2.5))
                await asyncio.sleep(max(playing, next_update - loop.time()))
                next_update = loop.time() + spacing
                async with http.post(
                    "/api/v1/scoreboard/update",
                    json={"actionToken": body["data"]["actionToken"], "actionId": action_id},
                    headers=headers,
                ) as resp:
                    await resp.read()
            except aiohttp.ClientError:
                await asyncio.sleep(1.0)  # the server is starting or stopping


def demo_players(
    config: Config, base_url: str, *, players: int, seed: int | None = None
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context that runs `players` simulated players against `base_url`."""
    rng = random.Random(seed)
    tasks = [
        Background(
            f"demo-player-{i + 1}",
            functools.partial(
                play, base_url, f"demo-{i + 1}", NAMES[i % len(NAMES)], config, rng=random.Random(rng.random())
            ),
        )
        for i in range(players)
    ]
    log.info("demo: %d simulated players at %s", players, base_url)
    return running(*tasks)
