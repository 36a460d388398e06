"""A real `run.py` traced through the standard OTEL_* variables, exporting OTLP over HTTP to a
collector the test runs on the loopback address: one provider per process (every `--workers`
worker exports under its own resource), the award's span tree as it arrives, the resource's
service name, and a variable this build cannot serve refused at start."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from app.tracing import CORRELATION_ID

from .real_servers import free_port, run_py
from .test_processes import _auth, _children, _env

STEPS = {"award.verify", "award.gate.claim", "award.transaction", "award.gate.confirm", "award.ranking", "award.fanout"}


@dataclass
class Span:
    """One exported span with the resource of the process that made it."""

    name: str
    span_id: bytes
    parent_span_id: bytes
    attributes: dict[str, object]
    resource: dict[str, object]


def _values(pairs: list[KeyValue]) -> dict[str, object]:
    out: dict[str, object] = {}
    for pair in pairs:
        kind = pair.value.WhichOneof("value")
        out[pair.key] = getattr(pair.value, kind) if kind else None
    return out


@dataclass
class Collector:
    """Accepts OTLP/HTTP trace exports (protobuf) on /v1/traces and keeps every span."""

    port: int = field(default_factory=free_port)
    spans: list[Span] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def receive(self, request: web.Request) -> web.Response:
        export = ExportTraceServiceRequest()
        export.ParseFromString(await request.read())
        for resource_spans in export.resource_spans:
            resource = _values(list(resource_spans.resource.attributes))
            for scope in resource_spans.scope_spans:
                for s in scope.spans:
                    self.spans.append(Span(s.name, s.span_id, s.parent_span_id, _values(list(s.attributes)), resource))
        body = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=body, content_type="application/x-protobuf")

    def pids(self) -> set[object]:
        return {s.resource["process.pid"] for s in self.spans}


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    found = Collector()
    app = web.Application()
    app.router.add_post("/v1/traces", found.receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", found.port).start()
    yield found
    await runner.cleanup()


def _traced(collector: Collector, **extra: str) -> dict[str, str]:
    return {
        "OTEL_SDK_DISABLED": "false",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # export within a tenth of a second
        **extra,
    }


async def _award(http: aiohttp.ClientSession, url: str, user: str, rid: str) -> None:
    async with http.post(
        f"{url}/api/v1/actions/initialize",
        json={"actionType": "COMPLETE_QUEST", "actionId": rid},
        headers=_auth(user),
    ) as resp:
        token = (await resp.json())["data"]["actionToken"]
    async with http.post(
        f"{url}/api/v1/scoreboard/update",
        json={"actionToken": token, "actionId": rid},
        headers={**_auth(user), "X-Request-ID": rid},
    ) as resp:
        assert resp.status == 200, await resp.text()


def _check_award_tree(spans: list[Span], rid: str) -> None:
    server = [
        s for s in spans if s.name == "POST /api/v1/scoreboard/update" and s.attributes.get(CORRELATION_ID) == rid
    ]
    assert len(server) == 1, rid
    award = [s for s in spans if s.name == "award" and s.parent_span_id == server[0].span_id]
    assert len(award) == 1 and award[0].attributes[CORRELATION_ID] == rid
    steps = [s for s in spans if s.parent_span_id == award[0].span_id]
    assert {s.name for s in steps} == STEPS and len(steps) == len(STEPS)
    assert all(s.attributes[CORRELATION_ID] == rid for s in steps)
    assert len({str(s.resource) for s in [server[0], award[0], *steps]}) == 1  # all from one process


async def test_every_worker_exports_its_own_spans(tmp_path: Path, redis_prefix: str, collector: Collector) -> None:
    server = await run_py({**_env(tmp_path, redis_prefix), **_traced(collector)}, "--workers", "2").astart()
    try:
        assert server.proc is not None
        deadline = time.monotonic() + 20
        # SO_REUSEPORT spreads new connections over the workers once both listen.
        while len(collector.pids()) < 2 and time.monotonic() < deadline:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
                for _ in range(8):
                    async with http.get(f"{server.url}/healthz") as resp:
                        assert resp.status == 200
            await asyncio.sleep(0.2)
        workers = set(_children(server.proc.pid))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
            for i in range(4):
                await _award(http, server.url, f"p{i}", f"traced-{i}")
    finally:
        await server.astop()  # each worker's provider exports what it still holds as it stops

    assert len(collector.pids()) == 2 and collector.pids() <= workers, (collector.pids(), workers)
    assert server.proc.pid not in collector.pids()  # the supervisor serves nothing and traces nothing
    assert len({s.resource["service.instance.id"] for s in collector.spans}) == 2
    assert {s.resource["service.name"] for s in collector.spans} == {"scoreboard"}
    for i in range(4):
        _check_award_tree(collector.spans, f"traced-{i}")


async def test_one_process_exports_to_the_traces_endpoint(tmp_path: Path, collector: Collector) -> None:
    env = _env(tmp_path, "unused") | {"SCOREBOARD_REDIS_URL": ""}  # embedded
    env |= _traced(
        collector,
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9/never",  # the traces-specific one wins
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"{collector.endpoint}/v1/traces",
        OTEL_SERVICE_NAME="board-eu-1",
        OTEL_RESOURCE_ATTRIBUTES="deployment.environment=test",
        OTEL_BSP_SCHEDULE_DELAY="60000",  # nothing goes out before the server stops
    )
    server = await run_py(env).astart()
    try:
        async with aiohttp.ClientSession() as http:
            await _award(http, server.url, "alice", "single-1")
        await asyncio.sleep(0.3)
        assert collector.spans == []
    finally:
        await server.astop()  # and then everything it holds
    _check_award_tree(collector.spans, "single-1")
    resource = collector.spans[0].resource
    assert resource["service.name"] == "board-eu-1" and resource["deployment.environment"] == "test"
    assert server.proc is not None and resource["process.pid"] == server.proc.pid
    assert resource["service.version"]


@pytest.mark.parametrize(
    ("variable", "value"),
    [("OTEL_TRACES_EXPORTER", "zipkin"), ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")],
)
def test_what_cannot_be_exported_stops_the_start(tmp_path: Path, variable: str, value: str) -> None:
    env = {**os.environ, **_env(tmp_path, "unused"), "SCOREBOARD_REDIS_URL": "", "OTEL_TRACES_EXPORTER": "otlp"}
    env[variable] = value
    result = subprocess.run([*run_py(env).command], env=env, capture_output=True, text=True, check=False, timeout=30)
    assert result.returncode == 2
    assert result.stderr.startswith(f"config error: {variable}: "), result.stderr
