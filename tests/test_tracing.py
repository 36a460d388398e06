"""Tracing: the on-switch read from the standard OTEL_* variables, and the span tree of one award
(aiohttp's SERVER span, the award and its steps, the correlation id) caught by the SDK's in-memory
exporter, in the embedded and the Redis set-ups. A real `run.py` exporting over OTLP, one provider
per worker, is tests/test_tracing_export.py's."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from app import __version__, tracing
from app.api.keys import SCOREBOARD

from .conftest import Flow, MakeClient, envelope

STEPS = ["award.verify", "award.gate.claim", "award.transaction", "award.gate.confirm", "award.ranking", "award.fanout"]
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
UPDATE = "POST /api/v1/scoreboard/update"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, ()),
        ({"OTEL_SERVICE_NAME": "board", "OTEL_TRACES_SAMPLER": "always_on"}, ()),  # nothing says where to
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ("otlp",)),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, ("otlp",)),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, ("otlp",)),
        ({"OTEL_TRACES_EXPORTER": " Console , otlp,console"}, ("console", "otlp")),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ()),
        ({"OTEL_SDK_DISABLED": "TRUE", "OTEL_TRACES_EXPORTER": "otlp"}, ()),
        ({"OTEL_SDK_DISABLED": "false", "OTEL_TRACES_EXPORTER": "otlp"}, ("otlp",)),
        ({"OTEL_SDK_DISABLED": "yes", "OTEL_TRACES_EXPORTER": "otlp"}, ("otlp",)),  # only "true" is true
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, ("otlp",)),
        (
            {
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",  # for the other signals
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
            },
            ("otlp",),
        ),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, ("console",)),
    ],
)
def test_the_on_switch(environ: dict[str, str], expected: tuple[str, ...]) -> None:
    assert tracing.exporters(environ) == expected


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_PROTOCOL"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}, "TRACES"),
    ],
)
def test_what_this_build_cannot_export_is_refused(environ: dict[str, str], named: str) -> None:
    with pytest.raises(tracing.TracingError, match=named):
        tracing.exporters(environ)


def test_start_makes_this_process_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_SAMPLER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")  # no span is made: never reached
    provider = tracing.start(("otlp", "console"))  # what run.py's serve() does in every process
    try:
        assert tracing.active() is provider and trace.get_tracer_provider() is provider
        resource = provider.resource.attributes
        assert resource["service.name"] == "scoreboard" and resource["service.version"] == __version__
        assert resource["process.pid"] == os.getpid() and resource["service.instance.id"]
    finally:
        tracing.uninstrument()
        provider.shutdown()
    assert tracing.active() is None


@pytest.mark.parametrize("storage", ["embedded"], indirect=True)
async def test_untraced_app_has_no_middleware_and_no_spans(make_client: MakeClient, bearer: Any) -> None:
    client = await make_client()
    assert tracing.active() is None
    assert list(client.app.middlewares) == []
    steps = client.app[SCOREBOARD].span
    assert steps("award") is steps("award.verify")  # the one shared no-op
    await Flow(client, bearer).award()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on in this process, as `tracing.start` does it, but into memory: apps made while
    the test runs are traced."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.instrument(provider)
    try:
        yield exporter
    finally:
        tracing.uninstrument()
        provider.shutdown()


async def _finished(
    exporter: InMemorySpanExporter, done: Callable[[Sequence[ReadableSpan]], bool]
) -> list[ReadableSpan]:
    # The SERVER span ends when the handler returns, as the answer is written: allow a moment.
    deadline = time.monotonic() + 2
    while not done(found := exporter.get_finished_spans()) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    return list(found)


async def _award_spans(exporter: InMemorySpanExporter, trace_id: int) -> list[ReadableSpan]:
    def ours(found: Sequence[ReadableSpan]) -> list[ReadableSpan]:
        return [s for s in found if s.context is not None and s.context.trace_id == trace_id]

    return ours(await _finished(exporter, lambda found: any(s.name == UPDATE for s in ours(found))))


async def _submit(client: Any, bearer: Any, token: str, rid: str) -> Any:
    headers = {**bearer("alice"), "X-Request-ID": rid, "traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"}
    return await client.post(
        "/api/v1/scoreboard/update", json={"actionToken": token, "actionId": "q1"}, headers=headers
    )


def _by_name(found: list[ReadableSpan]) -> dict[str, ReadableSpan]:
    named = {s.name: s for s in found}
    assert len(named) == len(found), [s.name for s in found]  # one of each
    return named


@pytest.mark.parametrize("storage", ["embedded", "redis"], indirect=True)
async def test_span_tree_of_one_award(spans: InMemorySpanExporter, make_client: MakeClient, bearer: Any) -> None:
    client = await make_client()
    assert tracing.active() is not None and client.app.middlewares
    token = await Flow(client, bearer).token()
    resp = await _submit(client, bearer, token, "award-trace-1")
    assert resp.status == 200, await resp.text()
    assert resp.headers["X-Request-ID"] == "award-trace-1"

    found = await _award_spans(spans, int(TRACE_ID, 16))
    named = _by_name(found)
    assert set(named) == {UPDATE, "award", *STEPS}

    server = named[UPDATE]  # aiohttp's instrumentation, continuing the caller's trace
    assert server.kind == SpanKind.SERVER
    assert server.parent is not None and server.parent.span_id == int(PARENT_ID, 16) and server.parent.is_remote
    assert server.attributes is not None
    assert server.attributes["http.route"] == "/api/v1/scoreboard/update"
    assert server.attributes[tracing.CORRELATION_ID] == "award-trace-1"

    award = named["award"]
    assert award.kind == SpanKind.INTERNAL and award.parent is not None and server.context is not None
    assert award.parent.span_id == server.context.span_id
    assert award.attributes is not None and award.attributes[tracing.ACTION_TYPE] == "COMPLETE_QUEST"
    assert award.status.status_code == StatusCode.UNSET

    steps = sorted((named[name] for name in STEPS), key=lambda s: s.start_time or 0)
    assert [s.name for s in steps] == STEPS  # in the order the award takes them
    assert award.context is not None
    for span in [award, *steps]:
        assert span.parent is not None and span.attributes is not None, span.name
        if span is not award:
            assert span.parent.span_id == award.context.span_id, span.name
        assert span.attributes[tracing.CORRELATION_ID] == "award-trace-1", span.name
        assert span.status.status_code == StatusCode.UNSET, span.name
        assert span.end_time is not None and award.end_time is not None and span.end_time <= award.end_time


def test_steps_make_spans_only_under_a_recording_one() -> None:
    provider = TracerProvider()
    steps = tracing.Spans(provider)
    assert steps("award") is steps("award.verify")  # outside any request: the shared no-op
    with provider.get_tracer("test").start_as_current_span("request"):
        assert steps("award") is not steps("award")  # a span each
    unsampled = trace.NonRecordingSpan(trace.SpanContext(int(TRACE_ID, 16), int(PARENT_ID, 16), is_remote=True))
    with trace.use_span(unsampled):
        assert steps("award") is steps("award.verify")  # left out by the sampler: no span to make
    provider.shutdown()


@pytest.mark.parametrize("storage", ["embedded"], indirect=True)
async def test_an_award_the_sampler_left_out_makes_no_span(
    spans: InMemorySpanExporter, make_client: MakeClient, bearer: Any
) -> None:
    client = await make_client()
    token = await Flow(client, bearer).token()
    spans.clear()
    unsampled = {**bearer("alice"), "traceparent": f"00-{TRACE_ID}-{PARENT_ID}-00"}  # the caller's decision
    resp = await client.post(
        "/api/v1/scoreboard/update", json={"actionToken": token, "actionId": "q1"}, headers=unsampled
    )
    assert resp.status == 200
    assert (await client.get("/healthz")).status == 200  # sampled: its span ends after the award's would
    found = await _finished(spans, lambda found: any(s.name == "GET /healthz" for s in found))
    assert [s.name for s in found] == ["GET /healthz"]


@pytest.mark.parametrize(
    ("storage", "refused_by"), [("embedded", "award.transaction"), ("redis", "award.gate.claim")], indirect=["storage"]
)
async def test_a_refused_award_marks_the_step_that_refused(
    spans: InMemorySpanExporter, make_client: MakeClient, bearer: Any, refused_by: str
) -> None:
    client = await make_client()
    token = await Flow(client, bearer).token()
    assert (await _submit(client, bearer, token, "first")).status == 200
    spans.clear()
    resp = await _submit(client, bearer, token, "replay")
    assert (await envelope(resp))["error"]["code"] == "TOKEN_ALREADY_USED"

    named = _by_name(await _award_spans(spans, int(TRACE_ID, 16)))
    failed = [name for name, s in named.items() if s.status.status_code == StatusCode.ERROR]
    assert sorted(failed) == sorted(["award", refused_by])  # the SERVER span of a 4xx is no error
    server = named[UPDATE].attributes
    assert server is not None and server["http.status_code"] == 409
    assert any(event.name == "exception" for event in named[refused_by].events)
    assert not {"award.ranking", "award.fanout"} & set(named)  # nothing after the refusal


@pytest.mark.parametrize("storage", ["embedded"], indirect=True)
async def test_query_strings_never_reach_a_span(
    spans: InMemorySpanExporter, make_client: MakeClient, user_auth: Any
) -> None:
    client = await make_client()
    jwt = user_auth.issue("alice", name="Alice")
    ws = await client.ws_connect(f"/ws/scoreboard?token={jwt}")  # where a WebSocket's user JWT travels
    await ws.receive_json()  # connected
    await ws.close()
    assert (await client.get("/api/v1/scoreboard/top?limit=3")).status == 200
    # User ids travel in paths: spans show the route instead, and a path no route serves not at all.
    assert (await client.get("/api/v1/users/zelda-7/score")).status == 401  # (no bearer)
    assert (await client.get("/api/v1/users/zelda-7/nowhere?x=1")).status == 404

    def ended(found: Sequence[ReadableSpan]) -> bool:
        names = {s.name for s in found}
        return {"GET /ws/scoreboard", "GET /api/v1/scoreboard/top", "GET /api/v1/users/{userId}/score"} <= names and (
            "GET /{unmatched}" in names
        )

    found = await _finished(spans, ended)
    attributes = {s.name: dict(s.attributes or {}) for s in found}
    assert attributes["GET /ws/scoreboard"]["http.target"] == "/ws/scoreboard?[redacted]"
    assert str(attributes["GET /ws/scoreboard"]["http.url"]).endswith("/ws/scoreboard?[redacted]")
    assert attributes["GET /api/v1/scoreboard/top"]["http.target"] == "/api/v1/scoreboard/top?[redacted]"
    assert attributes["GET /api/v1/users/{userId}/score"]["http.target"] == "/api/v1/users/{userId}/score"
    assert str(attributes["GET /api/v1/users/{userId}/score"]["http.url"]).endswith("/api/v1/users/{userId}/score")
    assert attributes["GET /{unmatched}"]["http.target"] == "/{unmatched}?[redacted]"  # the catch-all route
    assert jwt not in repr(attributes) and "zelda-7" not in repr([s.attributes for s in found])


def test_the_switch_is_documented() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert all(
        f"`{name}`" in readme for name in ("OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT")
    )
