"""Prometheus metrics in one process: each metric appears at `GET /metrics` and moves when what it
counts happens; labels stay bounded (route templates, codes, the catalog's actions)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, cast

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from openapi_spec_validator import OpenAPIV31SpecValidator
from prometheus_client.parser import text_string_to_metric_families

from app import overtakes as overtakes_module
from app.api.keys import HUB, METRICS, OVERTAKES, SCOREBOARD
from app.boards.catalog import Catalog
from app.clock import now_ms
from app.config import ConfigError, parse_settings
from app.errors import CLOSE_SERVICE_RESTART, ServiceUnavailable
from app.limits.local import LocalSlots
from app.live.hub import Hub
from app.metrics import activity, tally
from app.ranking import StandingsSource
from app.ranking.memory import MemoryRanking
from app.records import BoardPeriod, Standing
from app.settings import BoardSettings

from .conftest import Flow, MakeClient, envelope
from .live_client import recv_type, settled, subscribed
from .real_servers import free_port

METRICS_ON = {"enabled": True, "on_main_port": True}
# What does not depend on the storage set-up runs on the embedded one only.
EMBEDDED = pytest.mark.parametrize("storage", ["embedded"], indirect=True)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
Scrape = Callable[[], Awaitable[Samples]]


def parse(text: str) -> Samples:
    """Every sample of a scrape, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when absent (a labelled counter that never moved)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def scraper(client: TestClient[web.Request, web.Application]) -> Scrape:
    """GET /metrics on the main port, parsed."""

    async def scrape() -> Samples:
        resp = await client.get("/metrics")
        assert resp.status == 200 and resp.content_type == "text/plain"
        return parse(await resp.text())

    return scrape


@pytest.fixture
async def metered(make_client: MakeClient, bearer: Any) -> tuple[Flow, Scrape]:
    """The REST flow against an app with metrics on its main port, and its scrape."""
    client = await make_client(metrics=METRICS_ON)
    return Flow(client, bearer), scraper(client)


@EMBEDDED
async def test_off_by_default_and_not_on_the_main_port(make_client: MakeClient) -> None:
    client = await make_client()
    assert METRICS not in client.app
    assert (await client.get("/metrics")).status == 404


@EMBEDDED
async def test_requests_by_route_template_status_and_error_code(metered: tuple[Flow, Scrape], bearer: Any) -> None:
    flow, scrape = metered
    before = await scrape()
    assert (await flow.client.get("/api/v1/scoreboard/top")).status == 200
    resp = await flow.client.get("/api/v1/users/bob-the-user/score", headers=bearer("alice"))
    assert (await envelope(resp))["error"]["code"] == "USER_NOT_FOUND"
    assert (await flow.client.get("/no/such/path/for-bob")).status == 404
    after = await scrape()

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    top, user = "/api/v1/scoreboard/top", "/api/v1/users/{userId}/score"
    assert grew("scoreboard_http_requests_total", route=top, status="200") == 1
    assert grew("scoreboard_http_requests_total", route=user, status="404") == 1
    assert grew("scoreboard_http_requests_total", route="unmatched", status="404") == 1
    assert grew("scoreboard_http_errors_total", code="USER_NOT_FOUND") == 1
    assert grew("scoreboard_http_errors_total", code="NOT_FOUND") == 1
    assert grew("scoreboard_http_request_duration_seconds_count", route=top) == 1
    assert grew("scoreboard_http_request_duration_seconds_bucket", route=top, le="+Inf") == 1
    assert grew("scoreboard_http_request_duration_seconds_sum", route=top) > 0
    # Labels are route templates and codes: no raw path, no user id.
    assert not [labels for _, labels in after if any("bob" in v for _, v in labels)]


async def test_awards_tokens_turnover_board_and_active_users_move(metered: tuple[Flow, Scrape]) -> None:
    flow, scrape = metered
    await flow.award("alice", "q1")
    await flow.award("bob", "q2", "DEFEAT_BOSS")
    await flow.award("alice", "q3")
    samples = await scrape()
    assert value(samples, "scoreboard_awards_total", action="COMPLETE_QUEST", board="global") == 2
    assert value(samples, "scoreboard_awards_total", action="DEFEAT_BOSS", board="global") == 1
    assert value(samples, "scoreboard_action_tokens_issued_total", action="COMPLETE_QUEST") == 2
    assert value(samples, "scoreboard_action_tokens_spent_total", action="DEFEAT_BOSS") == 1
    assert value(samples, "scoreboard_top10_entries_total", board="global") == 2  # alice, then bob; not alice again
    assert value(samples, "scoreboard_active_users") == 2
    assert value(samples, "scoreboard_board_users", board="global") == 2
    # alice 200, bob 500: cumulative counts by score, as histogram buckets are
    assert value(samples, "scoreboard_score_distribution", board="global", le="100") == 0
    assert value(samples, "scoreboard_score_distribution", board="global", le="250") == 1
    assert value(samples, "scoreboard_score_distribution", board="global", le="500") == 2
    assert value(samples, "scoreboard_score_distribution", board="global", le="+Inf") == 2
    assert value(samples, "scoreboard_database_round_trip_seconds_count") >= 3
    assert value(samples, "scoreboard_backend_up", backend="database") == 1
    assert value(samples, "scoreboard_board_rebuilds_total", outcome="succeeded") >= 1


async def test_overtake_notices_and_skipped_writes_are_counted(
    metered: tuple[Flow, Scrape], monkeypatch: pytest.MonkeyPatch
) -> None:
    flow, scrape = metered
    await flow.award("alice", "q1")
    await flow.award("bob", "q2")  # a first entry passes nobody; bob ties alice, behind her
    await flow.award("bob", "q3")  # bob passes alice: she is told
    monkeypatch.setattr(overtakes_module, "MAX_PENDING", 0)
    await flow.award("carol", "q4")
    await flow.award("carol", "q5")  # carol passes alice: too many writes pending, nobody told
    await flow.client.app[OVERTAKES].finished()
    samples = await scrape()
    assert value(samples, "scoreboard_overtake_notices_total") == 1
    assert value(samples, "scoreboard_overtakes_skipped_total") == 1


@EMBEDDED
async def test_refusals_and_rate_limits_by_code_and_limit(make_client: MakeClient, bearer: Any) -> None:
    client = await make_client(metrics=METRICS_ON, limits={"updates_per_minute": 2, "tokens_per_user": 1})
    flow, scrape = Flow(client, bearer), scraper(client)
    token = await flow.token("alice", "q1")
    assert (await flow.submit(token)).status == 200
    assert (await flow.submit(token)).status == 409  # the same token again
    assert (await flow.submit(token)).status == 429  # the third update in a minute
    await flow.token("alice", "q2")
    body = {"actionType": "COMPLETE_QUEST", "actionId": "q3"}
    resp = await client.post("/api/v1/actions/initialize", json=body, headers=bearer("alice"))
    assert resp.status == 429  # one unused token held already
    samples = await scrape()
    assert value(samples, "scoreboard_rate_limited_total", limit="tokens_per_user") == 1
    assert value(samples, "scoreboard_award_refusals_total", code="TOKEN_ALREADY_USED") == 1
    assert value(samples, "scoreboard_rate_limited_total", limit="updates_per_minute") == 1
    assert value(samples, "scoreboard_http_errors_total", code="RATE_LIMITED") == 2


@EMBEDDED
async def test_cheat_rules_and_action_rate_limits_by_name(make_client: MakeClient, bearer: Any) -> None:
    chest = {"score": 1, "hold_over": {"count": 0, "window_s": 60}, "hold_within_s": 60}
    limited = {"score": 1, "rate_limit": {"count": 1, "window_s": 60}}
    client = await make_client(metrics=METRICS_ON, actions={"OPEN_CHEST": chest, "LIMITED": limited})
    flow, scrape = Flow(client, bearer), scraper(client)
    for action_id in ("c1", "c2"):
        assert (await flow.submit(await flow.token("alice", action_id, "OPEN_CHEST"), "alice", action_id)).status == 202
    for action_id, status in (("l1", 200), ("l2", 429)):
        assert (await flow.submit(await flow.token("alice", action_id, "LIMITED"), "alice", action_id)).status == status
    samples = await scrape()
    # The first was held by hold_over alone (nothing before it); the second by both rules.
    held = {"action": "OPEN_CHEST", "board": "global"}
    assert value(samples, "scoreboard_awards_held_total", **held, reason="hold_over") == 2
    assert value(samples, "scoreboard_awards_held_total", **held, reason="hold_within_s") == 1
    assert value(samples, "scoreboard_rate_limited_total", limit="actions.LIMITED.rate_limit") == 1


@EMBEDDED
async def test_award_held_off_the_board(metered: tuple[Flow, Scrape], monkeypatch: pytest.MonkeyPatch) -> None:
    flow, scrape = metered
    token = await flow.token("alice", "q1")

    async def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise ServiceUnavailable("Redis is unavailable")

    monkeypatch.setattr(flow.client.app[SCOREBOARD].ranking, "put_all", unavailable)
    assert (await flow.submit(token)).status == 503
    samples = await scrape()
    held = {"action": "COMPLETE_QUEST", "board": "global", "reason": "board_unavailable"}
    assert value(samples, "scoreboard_awards_held_total", **held) == 1
    assert value(samples, "scoreboard_awards_total", action="COMPLETE_QUEST", board="global") == 1  # committed


@EMBEDDED
async def test_live_connections_messages_and_wave_latency(metered: tuple[Flow, Scrape]) -> None:
    flow, scrape = metered
    viewer = await subscribed(flow.client)
    before = await scrape()
    assert value(before, "scoreboard_websocket_connections") == 1
    assert value(before, "scoreboard_websocket_subscriptions", channel="leaderboard") == 1
    await flow.award("alice", "q1")
    await recv_type(viewer, "leaderboard_update")
    await settled(flow.client)
    after = await scrape()
    assert value(after, "scoreboard_waves_total") > value(before, "scoreboard_waves_total")
    assert value(after, "scoreboard_websocket_messages_sent_total") > value(
        before, "scoreboard_websocket_messages_sent_total"
    )
    assert (
        value(after, "scoreboard_wave_latency_seconds_count")
        == value(before, "scoreboard_wave_latency_seconds_count") + 1
    )
    assert value(after, "scoreboard_wave_latency_seconds_sum") >= 0
    await viewer.close()
    for _ in range(50):
        if value(await scrape(), "scoreboard_websocket_connections") == 0:
            break
        await asyncio.sleep(0.05)
    assert value(await scrape(), "scoreboard_websocket_connections") == 0


@EMBEDDED
async def test_process_metrics_in_one_process(metered: tuple[Flow, Scrape]) -> None:
    _, scrape = metered
    samples = await scrape()
    names = {name for name, _ in samples}
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds"} <= names
    assert value(samples, "process_resident_memory_bytes") > 0


@pytest.mark.parametrize("storage", ["redis", "postgres"], indirect=True)
async def test_redis_and_pool_metrics(metered: tuple[Flow, Scrape], storage: dict[str, Any]) -> None:
    flow, scrape = metered
    await flow.award("alice", "q1")
    samples = await scrape()
    assert value(samples, "scoreboard_redis_round_trip_seconds_count") >= 1
    assert value(samples, "scoreboard_backend_up", backend="redis") == 1
    assert value(samples, "scoreboard_pool_connections_max", pool="redis") == 64
    assert value(samples, "scoreboard_pool_connections_in_use", pool="redis") >= 0
    assert value(samples, "scoreboard_active_users") == 1  # the Redis HyperLogLog
    if "database_url" in storage:
        assert value(samples, "scoreboard_pool_connections_max", pool="database") == 10
        assert value(samples, "scoreboard_database_round_trip_seconds_count") >= 2


class _Socket:
    """A transport stand-in that is always far behind."""

    closed = False

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 1 << 30

    def get_extra_info(self, name: str) -> None:
        return None

    def write(self, frame: bytes) -> None:
        raise AssertionError("a client that far behind is never written to")

    async def close(self, **kwargs: Any) -> None:
        self.closed = True


async def test_slow_client_closed_and_its_frames_dropped() -> None:
    catalog = Catalog("global", {"global": BoardSettings()})
    hub = Hub(MemoryRanking(), LocalSlots(3), catalog, now_ms, max_buffer=1024)
    sock = _Socket()
    conn = hub.connect(cast(web.WebSocketResponse, sock), cast(Any, sock))
    assert not conn.send_frame(b"x")  # too far behind: closed (1013), the frame dropped
    hub.close_all(CLOSE_SERVICE_RESTART, "server shutting down")
    await hub.finished()  # waits for the close under way
    assert sock.closed
    assert not conn.send_frame(b"y")  # going away: dropped
    registry = hub.registry
    assert (registry.slow_closed, registry.dropped_closed, registry.sent) == (1, 1, 0)


async def test_a_failed_rebuild_is_counted() -> None:
    class Down:
        async def standings(self, board: str, period: str) -> list[Standing]:
            raise ServiceUnavailable("The database is unavailable")

    ranking = MemoryRanking()
    with pytest.raises(ServiceUnavailable):
        await ranking.fill(cast(StandingsSource, Down()), {BoardPeriod(board="global", period="all"): None})
    assert ranking.fills == {"failed": 1}


def test_histogram_buckets_hold_at_most_their_bound() -> None:
    histogram = tally.Histogram((0.1, 1.0))
    for seconds in (0.05, 0.1, 0.5, 1.0, 3.0):
        histogram.observe(seconds)
    assert histogram.counts == [2, 2, 1] and histogram.count == 5 and histogram.total == pytest.approx(4.65)


@EMBEDDED
async def test_scrape_shows_the_buckets_an_in_process_histogram_counted(metered: tuple[Flow, Scrape]) -> None:
    flow, scrape = metered
    waves = flow.client.app[HUB].tally
    for seconds in (0.001, 0.03, 0.03, 9.0):
        waves.latency.observe(seconds)
    samples = await scrape()
    name = "scoreboard_wave_latency_seconds_bucket"
    assert [value(samples, name, le=le) for le in ("0.005", "0.02", "0.05", "5.0", "+Inf")] == [1, 1, 3, 3, 4]
    assert value(samples, "scoreboard_wave_latency_seconds_sum") == pytest.approx(9.061)
    samples = await scrape()  # a second scrape adds nothing new
    assert value(samples, name, le="+Inf") == 4


async def test_active_users_leave_the_window_after_five_minutes(monkeypatch: pytest.MonkeyPatch) -> None:
    minute = [1000]
    monkeypatch.setattr(activity, "_minute", lambda: minute[0])
    active = activity.LocalActivity()
    active.saw("alice")
    active.saw("bob")
    assert await active.count() == 2
    minute[0] += 3
    active.saw("bob")  # bob again: his window starts over
    assert await active.count() == 2
    minute[0] += 2  # alice's minute is now five minutes back
    assert await active.count() == 1
    minute[0] += 5
    assert await active.count() == 0


@EMBEDDED
async def test_own_listener_by_default_not_the_main_port(make_client: MakeClient) -> None:
    port = free_port()
    client = await make_client(metrics={"enabled": True, "port": port})
    assert (await client.get("/metrics")).status == 404  # not on the API's port
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as resp:
        assert resp.status == 200 and resp.content_type == "text/plain"
        assert "scoreboard_http_requests_total" in await resp.text()
    paths = (await (await client.get("/api/openapi.json")).json())["paths"]
    assert "/metrics" not in paths  # the document describes the API's port only


@EMBEDDED
async def test_on_the_main_port_the_document_lists_it(make_client: MakeClient) -> None:
    client = await make_client(metrics=METRICS_ON)
    doc = await (await client.get("/api/openapi.json")).json()
    scrape = doc["paths"]["/metrics"]["get"]
    assert scrape["tags"] == ["operations"] and "security" not in scrape
    [(media, content)] = scrape["responses"]["200"]["content"].items()
    assert media == (await client.get("/metrics")).headers["Content-Type"]
    assert parse(content["example"])  # Prometheus's own parser reads the example
    OpenAPIV31SpecValidator(doc).validate()
    assert ("get", "/metrics") in {
        (r.method.lower(), r.resource.canonical) for r in client.app.router.routes() if r.resource is not None
    }


def test_the_metrics_port_is_not_the_api_port_unless_asked() -> None:
    settings: dict[str, Any] = {"server": {"port": 9000}, "metrics": {"enabled": True, "port": 9000}}
    with pytest.raises(ConfigError, match=r"^metrics\.port: "):
        parse_settings({**settings, "actions": {"A": {"score": 1}}})
    settings["metrics"]["on_main_port"] = True
    assert parse_settings({**settings, "actions": {"A": {"score": 1}}}).metrics.on_main_port
