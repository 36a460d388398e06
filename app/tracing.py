"""OpenTelemetry tracing: off unless the standard `OTEL_*` variables ask for it.

On, each process (every `--workers` worker) builds its own SDK tracer provider and exporter
(`start`), aiohttp's instrumentation makes one SERVER span per request, and the service marks
the steps of an award with `Spans` (`award`, `award.verify`, `award.gate.claim`, ...), each
carrying the request's correlation id. Off, nothing of the SDK is imported and a step costs one
`is None` check and a shared no-op context manager."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from .logs import request_id

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import Span, TracerProvider
    from opentelemetry.trace import Tracer

SERVICE_NAME = "scoreboard"
CORRELATION_ID = "scoreboard.correlation_id"  # the X-Request-ID of the logs, on every span we make
ACTION_TYPE = "scoreboard.action_type"
EXPORTERS = ("otlp", "console")  # values of OTEL_TRACES_EXPORTER this build can serve
PROTOCOL = "http/protobuf"  # the OTLP exporter shipped (requirements.txt): OTLP over HTTP
_X_REQUEST_ID = "X-Request-ID"
# The old and the stable HTTP conventions: a target (path and query), a whole URL, a path.
_URL_ATTRIBUTES = ("http.target", "http.url", "url.full", "url.path")
UNMATCHED = "[unmatched]"


def _as_route(value: str, route: str) -> str:
    """A recorded target, path or URL with its path replaced by `route` and its query redacted."""
    parts = urlsplit(value)
    query = "[redacted]" if parts.query or value.endswith("?") else ""
    if parts.scheme:  # a whole URL
        return urlunsplit((parts.scheme, parts.netloc, route, query, ""))
    return route + ("?" + query if query else "")


class TracingError(ValueError):
    """An `OTEL_*` variable asks for something this build cannot do; the message names it."""


def _true(value: str | None) -> bool:
    # The specification's booleans: only "true", in any case, is true.
    return value is not None and value.strip().lower() == "true"


def exporters(environ: Mapping[str, str]) -> tuple[str, ...]:
    """The span exporters the environment asks for; empty: tracing is off.

    `OTEL_SDK_DISABLED=true` turns it off whatever else is set. Otherwise it is on when
    `OTEL_TRACES_EXPORTER` names exporters (`otlp`, `console`, comma-separated; `none` alone:
    off), or, with that variable unset, when an OTLP endpoint is set
    (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`). The specification's
    default exporter is `otlp` to localhost, but a server that nobody configured for tracing
    sends nothing anywhere: unset means off."""
    if _true(environ.get("OTEL_SDK_DISABLED")):
        return ()
    names = environ.get("OTEL_TRACES_EXPORTER", "").strip()
    if not names:
        endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        chosen: tuple[str, ...] = ("otlp",) if endpoint else ()
    else:
        chosen = tuple(dict.fromkeys(n.strip().lower() for n in names.split(",") if n.strip() != "none"))
        unknown = [n for n in chosen if n not in EXPORTERS]
        if unknown:
            raise TracingError(f"OTEL_TRACES_EXPORTER: {', '.join(unknown)} not available (otlp, console or none)")
    if "otlp" in chosen:
        for var in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
            protocol = environ.get(var, "").strip()
            if protocol:
                if protocol != PROTOCOL:
                    raise TracingError(f"{var}: {protocol!r} not available; this build exports OTLP as {PROTOCOL}")
                break  # the traces-specific variable wins over the general one
    return chosen


def _service_named(environ: Mapping[str, str]) -> bool:
    if environ.get("OTEL_SERVICE_NAME", "").strip():
        return True
    pairs = environ.get("OTEL_RESOURCE_ATTRIBUTES", "").split(",")
    return any(pair.partition("=")[0].strip() == "service.name" for pair in pairs)


def start(names: tuple[str, ...]) -> TracerProvider:
    """This process's tracer provider, exporting to `names` (from `exporters`), made the global one,
    with aiohttp's server instrumentation installed; call once per process, before `create_app`.

    The SDK reads the rest of the standard variables itself: the exporter's endpoint, headers,
    timeout, compression and certificate (`OTEL_EXPORTER_OTLP_*`), the sampler
    (`OTEL_TRACES_SAMPLER`, `_ARG`), the batch processor (`OTEL_BSP_*`), the propagators
    (`OTEL_PROPAGATORS`), the resource (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`)."""
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    from . import __version__

    resource = Resource({"service.version": __version__, "process.pid": os.getpid()}).merge(Resource.create())
    if not _service_named(os.environ):
        resource = resource.merge(Resource({"service.name": SERVICE_NAME}))
    provider = TracerProvider(resource=resource)
    for name in names:
        exporter: SpanExporter
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
        else:
            exporter = ConsoleSpanExporter()
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    instrument(provider)
    return provider


def instrument(provider: TracerProvider) -> None:
    """Every `web.Application` made from now on opens a SERVER span per request with spans from
    `provider` (aiohttp's instrumentation, which replaces the class with a subclass); `uninstrument`
    undoes it."""
    from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor
    from opentelemetry.sdk.trace import SpanProcessor
    from opentelemetry.trace import SpanKind

    class RoutesOnly(SpanProcessor):
        """The instrumentation records the request's path and query string: the path names users
        (`/users/{userId}/…`) and the query holds a WebSocket's user JWT (`?token=`). Both are
        replaced before any exporter sees them: the path by its route (`http.route`, a path no
        route serves by `[unmatched]`), a query by `[redacted]`."""

        def on_start(self, span: Span, parent_context: Context | None = None) -> None:
            attributes = span.attributes
            if span.kind is not SpanKind.SERVER or attributes is None:
                return
            route = attributes.get("http.route") or UNMATCHED
            for key in _URL_ATTRIBUTES:
                value = attributes.get(key)
                if isinstance(value, str):
                    span.set_attribute(key, _as_route(value, str(route)))
            if "url.query" in attributes:
                span.set_attribute("url.query", "[redacted]")

    global _provider  # noqa: PLW0603 - one provider per process, like the instrumentation's own
    provider.add_span_processor(RoutesOnly())
    with warnings.catch_warnings():
        # aiohttp discourages subclassing its Application, which is how the instrumentation works.
        warnings.filterwarnings("ignore", "Inheritance class _InstrumentedApplication", DeprecationWarning)
        AioHttpServerInstrumentor().instrument(tracer_provider=provider, raise_exception_on_conflict=True)
    _provider = provider


def uninstrument() -> None:
    """Applications made from now on are plain again, and `active()` is None (tests)."""
    from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor

    global _provider  # noqa: PLW0603
    AioHttpServerInstrumentor().uninstrument()
    _provider = None


_provider: TracerProvider | None = None


def active() -> TracerProvider | None:
    """The provider `instrument` installed in this process; None while tracing is off."""
    return _provider


def request_middlewares() -> list[Middleware]:
    """The application's own middlewares: none while tracing is off (any middleware costs every
    request, even one that does nothing); on, one that puts the correlation id on the request's
    span. The instrumentation puts its own in front of them."""
    if _provider is None:
        return []
    from opentelemetry.trace import get_current_span

    @web.middleware
    async def correlate(request: web.Request, handler: Handler) -> web.StreamResponse:
        # The instrumentation's SERVER span is the current one here. The edge picks the id
        # (X-Request-ID or a new one) and answers it in that header; a response that started
        # itself (a WebSocket) has none.
        response = await handler(request)
        rid = response.headers.get(_X_REQUEST_ID)
        if rid is not None:
            get_current_span().set_attribute(CORRELATION_ID, rid)
        return response

    return [correlate]


class StepSpan(Protocol):
    """What a step may do with its span."""

    def set_attribute(self, key: str, value: str) -> None: ...


class _Off:
    """The step of an untraced process: enters and leaves, nothing else; shared by all."""

    def __enter__(self) -> _Off:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def set_attribute(self, key: str, value: str) -> None:
        """Nothing to set."""


_OFF = _Off()


class Spans:
    """`with spans("award.verify"):` a child span of the current one, with the correlation id; the
    shared no-op when tracing is off, and when the current span records nothing (a request the
    sampler left out, or one outside any traced request): an unrecorded span still costs ~8 µs."""

    def __init__(self, provider: TracerProvider | None) -> None:
        self._tracer: Tracer | None = None
        if provider is not None:
            from opentelemetry.trace import get_current_span

            from . import __version__

            self._tracer = provider.get_tracer(SERVICE_NAME, __version__)
            self._current = get_current_span

    def __call__(self, name: str) -> AbstractContextManager[StepSpan]:
        tracer = self._tracer
        if tracer is None or not self._current().is_recording():
            return _OFF
        rid = request_id.get()
        return tracer.start_as_current_span(name, attributes=None if rid is None else {CORRELATION_ID: rid})
