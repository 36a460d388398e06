"""Bearer JWTs from an identity provider through the running app, over REST and the WebSocket: each
algorithm, key rotation, a flood of unknown kids, the provider down and back, forged and hostile
tokens (401 UNAUTHORIZED or close 4401, never an error of the server, never a token in the logs)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from app import create_app
from app.api.keys import USER_AUTH
from app.auth import UserAuth
from app.errors import CLOSE_UNAUTHORIZED
from app.identity import ProviderKeys

from .conftest import JWT_SECRET, envelope, make_config
from .identity_provider import (
    AUDIENCE,
    CONFUSIONS,
    HOSTILE,
    ISSUER,
    Clock,
    IdentityProvider,
    forged_tokens,
    hostile_tokens,
    new_key,
)
from .live_client import WS, closed_with, recv, token_for

Client = TestClient[web.Request, web.Application]
SCORE = "/api/v1/users/{}/score"
KNOWN = (404, "USER_NOT_FOUND")  # authenticated: the user simply has no score yet


async def _client(aiohttp_client: Any, tmp_path: Path, idp: IdentityProvider, **auth: Any) -> Client:
    config = make_config(
        tmp_path / "db.sqlite",
        auth={"jwks_url": idp.url, "issuer": ISSUER, "audience": AUDIENCE, **auth},
        limits={"ws_handshakes_per_ip_per_minute": 10_000},  # these tests open many connections
    )
    client: Client = await aiohttp_client(create_app(config))
    return client


def _keys(client: Client) -> ProviderKeys:
    keys = client.app[USER_AUTH].provider
    assert keys is not None
    return keys


async def _settled(client: Client) -> Clock:
    """Once the fetch made at start has ended: the keys' clock, moved on by tests."""
    keys = _keys(client)
    assert await keys.refresh()
    clock = Clock()
    clock.now = keys.clock() + keys.cooldown_seconds  # a fetch on an unknown kid may start at once
    keys.clock = clock
    return clock


@pytest.fixture
async def client(aiohttp_client: Any, tmp_path: Path, idp: IdentityProvider) -> Client:
    return await _client(aiohttp_client, tmp_path, idp)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _status(client: Client, token: str, user: str = "alice") -> tuple[int, str | None]:
    """The status of an authenticated read, and the error code when it failed."""
    resp = await client.get(SCORE.format(user), headers=_bearer(token))
    body = await envelope(resp)
    return resp.status, None if body["success"] else body["error"]["code"]


async def _ws_user(client: Client, token: str, *, in_query: bool) -> str | int | None:
    """The user a connection authenticated as, or the code it was closed with."""
    if in_query:
        ws = await client.ws_connect(WS, params={"token": token})
        msg = await ws.receive(timeout=5)
        if msg.type.name != "TEXT":
            return ws.close_code
        user: str = msg.json().get("userId", "")
        await ws.close()
        return user
    ws = await client.ws_connect(WS)
    assert (await recv(ws))["type"] == "connected"
    await ws.send_json({"type": "auth", "token": token})
    msg = await ws.receive(timeout=5)
    if msg.type.name != "TEXT":
        return await closed_with(ws) if not ws.closed else ws.close_code
    user = msg.json().get("userId", "")
    await ws.close()
    return user


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
async def test_each_algorithm_plays_the_real_flow(client: Client, idp: IdentityProvider, alg: str) -> None:
    token = idp.sign(idp.kid(alg), "alice", name="Alice")
    headers = _bearer(token)
    resp = await client.post(
        "/api/v1/actions/initialize", json={"actionType": "COMPLETE_QUEST", "actionId": "q1"}, headers=headers
    )
    action_token = (await envelope(resp))["data"]["actionToken"]
    resp = await client.post(
        "/api/v1/scoreboard/update", json={"actionToken": action_token, "actionId": "q1"}, headers=headers
    )
    assert resp.status == 200, await resp.text()
    assert (await envelope(await client.get(SCORE.format("alice"), headers=headers)))["data"]["score"] == 100
    assert await _ws_user(client, token, in_query=True) == "alice"
    assert await _ws_user(client, idp.sign(idp.kid(alg), "bob"), in_query=False) == "bob"


async def test_rotation_at_the_provider(client: Client, idp: IdentityProvider) -> None:
    clock = await _settled(client)
    old = idp.kid("RS256")
    before_rotation = idp.sign(old, "alice")
    assert await _status(client, before_rotation) == KNOWN
    new = idp.rotate(old)
    fetches = idp.fetches
    assert await _status(client, idp.sign(new, "alice")) == KNOWN  # the new kid is fetched
    assert idp.fetches == fetches + 1
    assert await _ws_user(client, idp.sign(new, "bob"), in_query=True) == "bob"
    # The old key left with that fetch: its tokens, even one verified before, are refused.
    assert await _status(client, before_rotation) == (401, "UNAUTHORIZED")
    clock.now += _keys(client).cooldown_seconds
    assert await _ws_user(client, idp.sign(old, "carol"), in_query=False) == CLOSE_UNAUTHORIZED
    assert old not in _keys(client).kids


async def test_a_flood_of_unknown_kids_makes_no_fetch_storm(client: Client, idp: IdentityProvider) -> None:
    clock = await _settled(client)
    fetches = idp.fetches
    attacker = new_key("ES256")
    tokens = [idp.sign(f"made-up-{i}", key=attacker) for i in range(200)]
    answers = await asyncio.gather(*(_status(client, token) for token in tokens))
    assert answers == [(401, "UNAUTHORIZED")] * len(tokens)
    closes = await asyncio.gather(
        *(_ws_user(client, token, in_query=i % 2 == 0) for i, token in enumerate(tokens[:40]))
    )
    assert closes == [CLOSE_UNAUTHORIZED] * 40
    assert idp.fetches == fetches + 1  # REST and WebSocket together: one fetch in the cooldown
    clock.now += _keys(client).cooldown_seconds
    await asyncio.gather(*(_status(client, token) for token in tokens))
    assert idp.fetches == fetches + 2
    # The known keys answered throughout, without a fetch.
    assert await _status(client, idp.sign(idp.kid("EdDSA"))) == KNOWN
    assert idp.fetches == fetches + 2


async def test_provider_down_then_back(client: Client, idp: IdentityProvider) -> None:
    clock = await _settled(client)
    cooldown = _keys(client).cooldown_seconds
    await idp.stop()
    # Keys held go on verifying new tokens, REST and WebSocket alike.
    for alg in ("RS256", "ES256", "EdDSA"):
        assert await _status(client, idp.sign(idp.kid(alg), "alice")) == KNOWN
        assert await _ws_user(client, idp.sign(idp.kid(alg), "bob"), in_query=True) == "bob"
    new = idp.add_key("ES256")
    assert await _status(client, idp.sign(new, "alice")) == (401, "UNAUTHORIZED")  # fetch failed
    assert await _ws_user(client, idp.sign(new, "bob"), in_query=False) == CLOSE_UNAUTHORIZED
    await idp.start()
    clock.now += cooldown
    assert await _status(client, idp.sign(new, "alice")) == KNOWN  # recovered
    assert await _ws_user(client, idp.sign(new, "bob"), in_query=True) == "bob"
    # 503 is an outage too: the keys stay.
    idp.down = True
    clock.now += cooldown
    assert await _status(client, idp.sign(idp.add_key("EdDSA"), "alice")) == (401, "UNAUTHORIZED")
    assert await _status(client, idp.sign(new, "alice")) == KNOWN


@pytest.mark.parametrize("algorithms", [None, ["RS256", "ES256", "EdDSA", "HS256"]], ids=["jwks only", "and HS256"])
async def test_forged_tokens_are_refused(
    aiohttp_client: Any, tmp_path: Path, idp: IdentityProvider, algorithms: list[str] | None
) -> None:
    client = await _client(aiohttp_client, tmp_path, idp, **({"algorithms": algorithms} if algorithms else {}))
    await _settled(client)
    forged = forged_tokens(idp, JWT_SECRET)
    for case in CONFUSIONS:
        if case == "HS256 with the shared secret" and algorithms:
            assert await _status(client, forged[case]) == KNOWN, case  # configured: genuine
            continue
        assert await _status(client, forged[case]) == (401, "UNAUTHORIZED"), case
        assert await _ws_user(client, forged[case], in_query=True) == CLOSE_UNAUTHORIZED, case
    # The shared secret's own tokens, as `run.py token` makes them, only where HS256 is configured.
    hs256 = UserAuth(JWT_SECRET, issuer=ISSUER, audience=AUDIENCE).issue("alice")
    assert (await _status(client, hs256))[0] == (KNOWN[0] if algorithms else 401)
    assert (await _status(client, token_for("alice")))[0] == 401  # neither `iss` nor `aud`


WRONG_CLAIMS: dict[str, dict[str, Any]] = {
    "another issuer": {"iss": "https://evil.example"},
    "another audience": {"aud": "chat"},
    "expired": {"exp": int(time.time()) - 3600},
}


@pytest.mark.parametrize("claims", WRONG_CLAIMS.values(), ids=WRONG_CLAIMS.keys())
async def test_wrong_issuer_or_audience_is_refused(
    client: Client, idp: IdentityProvider, claims: dict[str, Any]
) -> None:
    token = idp.sign(idp.kid("RS256"), "alice", **claims)
    assert await _status(client, token) == (401, "UNAUTHORIZED")
    assert await _ws_user(client, token, in_query=True) == CLOSE_UNAUTHORIZED
    assert await _ws_user(client, token, in_query=False) == CLOSE_UNAUTHORIZED


async def test_hostile_tokens_are_401_and_4401_never_500_never_logged(
    client: Client, idp: IdentityProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await _settled(client)
    tokens = hostile_tokens(idp)
    for case in HOSTILE:
        token = tokens[case]
        assert await _status(client, token) == (401, "UNAUTHORIZED"), case
        assert await _ws_user(client, token, in_query=True) == CLOSE_UNAUTHORIZED, case
        assert await _ws_user(client, token, in_query=False) == CLOSE_UNAUTHORIZED, case
    assert idp.paths.get("/attacker", 0) == idp.paths.get("/x5u", 0) == 0
    logged = caplog.text
    leaked: Callable[[str], bool] = lambda token: len(token) > 8 and token in logged  # noqa: E731
    assert [case for case in HOSTILE if leaked(tokens[case])] == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_the_start_does_not_wait_for_the_provider(aiohttp_client: Any, tmp_path: Path) -> None:
    provider = IdentityProvider()
    kid = provider.add_key("RS256")
    await provider.start()
    url = provider.url
    await provider.stop()  # down before the server starts
    try:
        config = make_config(tmp_path / "db.sqlite", auth={"jwks_url": url, "issuer": ISSUER, "audience": AUDIENCE})
        client: Client = await aiohttp_client(create_app(config))
        assert await _status(client, provider.sign(kid)) == (401, "UNAUTHORIZED")
        clock = await _settled_down(client)
        await provider.start()
        clock.now += _keys(client).cooldown_seconds
        assert await _status(client, provider.sign(kid)) == KNOWN
    finally:
        await provider.stop()


async def _settled_down(client: Client) -> Clock:
    """As `_settled`, with the provider unreachable."""
    keys = _keys(client)
    assert not await keys.refresh()
    clock = Clock()
    clock.now = keys.clock()
    keys.clock = clock
    return clock
