"""The demo: simulated players who go through the real initialize -> update flow over HTTP,
awarding on an all-time and a weekly board, and a simulated game server that writes lap times to
a time-trial board through the trusted-write route with a service key of the run's own."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import random
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import aiohttp
import msgspec
from aiohttp import web

from .auth import UserAuth
from .config import Config, parse_settings
from .settings import BoardSettings, ServiceSettings
from .tasks import Background, running

log = logging.getLogger(__name__)

NAMES = [
    "Ada", "Brook", "Cyrus", "Dagny", "Ezra", "Freya", "Gus", "Hana", "Ivo", "Juno", "Kai", "Lumi",
    "Milo", "Nia", "Otto", "Pia",
]  # fmt: skip
CARS = ["Alpine A110", "Caterham Seven", "Lotus Elise", "Mazda MX-5", "Porsche Cayman", "Toyota GR86"]

GLOBAL, WEEKLY, TRIAL = "global", "weekly", "trial"
# The demo's own boards, whatever the configuration declares: it shows every kind of board moving
# without asking anyone to edit their config.toml.
BOARDS = {
    GLOBAL: BoardSettings(title="All time"),
    WEEKLY: BoardSettings(title="This week", reset="weekly", keep_periods=4),
    TRIAL: BoardSettings(title="Time trial", order="asc", operator="best", format="duration_ms"),
}
AWARDED_ON = (GLOBAL, WEEKLY)
RACER = "demo-racer"
LAP_MS = (55_000, 95_000)
LAP_PAUSE_SECONDS = (0.5, 2.0)
# Marks a demo key wherever it would turn up (a log, a paste), as secret scanners look for.
KEY_PREFIX = "sbdemo_"
VIEWER_ID = "demo-1"  # the simulated player (named NAMES[0]) whom the demo's link signs the page in as
SUMMARY_SECONDS = 5.0  # how often the demo says in one line what its players did


@dataclass
class Tally:
    """What the simulated players and the racer got done since the last summary."""

    awards: int = 0
    laps: int = 0

    def summary(self, seconds: float, base_url: str) -> str:
        """One line for the terminal, and the tally starts again."""
        line = f"demo: {self.awards} awards and {self.laps} lap times in the last {seconds:g} s; watch at {base_url}"
        self.awards = self.laps = 0
        return line


class ServiceKey:
    """A trusted server's key, made at random for one demo run and kept only in memory: the
    configuration holds its SHA-256, and neither `repr` nor `str` shows it."""

    __slots__ = ("_key",)

    def __init__(self, key: str | None = None) -> None:
        self._key = key if key is not None else KEY_PREFIX + secrets.token_urlsafe(32)

    @property
    def sha256(self) -> str:
        """What a `[services.NAME]` table keeps of the key (`key_sha256`)."""
        return hashlib.sha256(self._key.encode()).hexdigest()

    def authorization(self) -> str:
        """The `Authorization` header's value that presents the key."""
        return f"Bearer {self._key}"

    def __repr__(self) -> str:
        return "ServiceKey(<hidden>)"


def demo_config(config: Config, racer_key: ServiceKey | None = None) -> Config:
    """The configuration a demo runs with: its own database file, a per-IP limit that lets every
    simulated player (all on 127.0.0.1) through, WARNING logs unless DEBUG was asked for, the demo's
    boards (every action awarding on the all-time and the weekly one), and as its only trusted server
    the racer, with `racer_key`'s SHA-256, allowed to write to the time-trial board (none without a
    key); bearers are HS256 only; no action waits for an attestation."""
    settings = config.settings
    storage = settings.storage
    if storage.sqlite_path == "./data/scoreboard.db":
        storage = msgspec.structs.replace(storage, sqlite_path="./data/demo.db")
    limits = msgspec.structs.replace(
        settings.limits, ip_requests_per_minute=max(settings.limits.ip_requests_per_minute, 100_000)
    )
    # A line per request would bury the served URL: the demo says what it does in a summary line
    # instead (`log.level = "DEBUG"` still shows every line).
    log = settings.log if settings.log.level == "DEBUG" else msgspec.structs.replace(settings.log, level="WARNING")
    # The configuration's own services are left out: their keys have no business on a demo server.
    services = {}
    if racer_key is not None:
        services[RACER] = ServiceSettings(key_sha256=racer_key.sha256, scopes=("scores:write",), boards=(TRIAL,))
    # The simulated players sign their own bearers with the shared secret: no identity provider.
    auth = msgspec.structs.replace(settings.auth, jwks_url=None, algorithms=None)
    demo = msgspec.structs.replace(
        settings,
        storage=storage,
        auth=auth,
        limits=limits,
        log=log,
        server=msgspec.structs.replace(settings.server, default_board=GLOBAL),
        boards=dict(BOARDS),
        # No game server of the demo attests its players' actions: they are awarded without.
        actions={
            name: msgspec.structs.replace(a, boards=AWARDED_ON, attest=False) for name, a in settings.actions.items()
        },
        services=services,
    )
    # The same checks as a file's, so the demo's boards and awards cannot drift out of what is valid.
    return msgspec.structs.replace(config, settings=parse_settings(msgspec.to_builtins(demo)))


def viewer_link(config: Config) -> str:
    """The live page signed in as the first simulated player: the link's fragment (which no server
    ever sees) hands the page a token of theirs, valid as long as the configuration allows, which
    the page keeps in its session storage. The ranks around that player and the toasts of who
    passed them then move with the demo."""
    host = config.server.host
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address
    token = UserAuth.for_config(config).issue(VIEWER_ID, name=NAMES[0], ttl_seconds=config.auth.max_lifetime_seconds)
    return f"http://{host}:{config.server.port}/#token={token}"


async def play(base_url: str, user_id: str, name: str, config: Config, *, rng: random.Random, tally: Tally) -> None:
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
                tally.awards += resp.status == 200
            except aiohttp.ClientError:
                await asyncio.sleep(1.0)  # the server is starting or stopping


async def race(
    base_url: str,
    key: ServiceKey,
    user_ids: Sequence[str],
    *,
    rng: random.Random,
    tally: Tally,
    pause: tuple[float, float] = LAP_PAUSE_SECONDS,
) -> None:
    """A game server's time trial, forever: now and then one of `user_ids` finishes a lap, and its
    time (ms) and car are written to the trial board through the trusted-write route."""
    # One key per lap, kept across the lap's retries: a write the server applied but whose answer
    # was lost is answered again, not applied twice. Random per run, since keys outlive a run.
    run = secrets.token_hex(6)
    laps = 0
    async with aiohttp.ClientSession(base_url, headers={"Authorization": key.authorization()}) as http:
        while True:
            await asyncio.sleep(rng.uniform(*pause))
            laps += 1
            lap = {"userId": rng.choice(user_ids), "score": rng.randint(*LAP_MS), "metadata": {"car": rng.choice(CARS)}}
            headers = {"Idempotency-Key": f"lap-{run}-{laps}"}
            while True:
                try:
                    async with http.post(f"/api/v1/boards/{TRIAL}/scores", json=lap, headers=headers) as resp:
                        await resp.read()
                    tally.laps += resp.status == 200
                    break
                except aiohttp.ClientError:
                    await asyncio.sleep(1.0)  # the server is starting or stopping


async def summarize(tally: Tally, base_url: str, announce: Callable[[str], None], *, seconds: float) -> None:
    """Every `seconds`, one line of what the demo did, naming where to watch it."""
    while True:
        await asyncio.sleep(seconds)
        announce(tally.summary(seconds, base_url))


def demo_players(
    config: Config,
    base_url: str,
    *,
    players: int,
    seed: int | None = None,
    racer_key: ServiceKey | None = None,
    announce: Callable[[str], None] | None = None,
    summary_seconds: float = SUMMARY_SECONDS,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context that runs `players` simulated players against `base_url` and, given the
    key `demo_config` configured, the racer that writes their lap times; with `announce`, a summary
    line every `summary_seconds`."""
    rng = random.Random(seed)
    tally = Tally()
    user_ids = [f"demo-{i + 1}" for i in range(players)]
    tasks = [
        Background(
            f"demo-player-{i + 1}",
            functools.partial(
                play, base_url, user_id, NAMES[i % len(NAMES)], config, rng=random.Random(rng.random()), tally=tally
            ),
        )
        for i, user_id in enumerate(user_ids)
    ]
    laps = ""
    if racer_key is not None and user_ids:
        tasks.append(
            Background(
                RACER,
                functools.partial(race, base_url, racer_key, user_ids, rng=random.Random(rng.random()), tally=tally),
            )
        )
        laps = f"; a simulated game server writes their lap times to {TRIAL}"
    if announce is not None:
        tasks.append(
            Background("demo-summary", functools.partial(summarize, tally, base_url, announce, seconds=summary_seconds))
        )
    log.info("demo: %d simulated players at %s, awarding on %s%s", players, base_url, " and ".join(AWARDED_ON), laps)
    return running(*tasks)
