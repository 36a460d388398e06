"""Structured logs: one JSON object per line, with the request's correlation id."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from contextvars import ContextVar
from typing import TextIO

import msgspec
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from .clock import iso, now_ms

_ACCESS = "scoreboard.access"
access_log = logging.getLogger(_ACCESS)
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

# Attributes every LogRecord has; anything else was passed through `extra=` and is emitted.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}
_encoder = msgspec.json.Encoder(enc_hook=str)


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON line: timestamp, level, logger, message, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "timestamp": iso(int(record.created * 1000)),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if "correlationId" not in entry and (rid := request_id.get()) is not None:
            entry["correlationId"] = rid
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _encoder.encode(entry).decode()


class AccessLine(msgspec.Struct, rename={"correlation_id": "correlationId"}, omit_defaults=True):
    """One request's line, in the formatter's shape: cheaper to make than a dict."""

    timestamp: str
    level: str
    logger: str
    message: str
    method: str
    path: str
    status: int
    duration_ms: float
    remote: str  # the client, resolved through the trusted proxies
    correlation_id: str
    peer: str | None = None  # the socket's peer, when it is not the client (a proxy)


class LoopBufferedHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes the lines of one event-loop turn together: a write per line costs more than a request."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream or sys.stderr)
        self._lines: list[str | dict[str, object] | AccessLine] = []  # entries are encoded when written
        self._scheduled = False

    def emit(self, record: logging.LogRecord) -> None:
        """Queue the line; flush at the end of this loop turn, or now outside a loop."""
        try:
            self._lines.append(self.format(record))
        except Exception:
            self.handleError(record)
            return
        if self._scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a thread or start-up code: nothing would flush later
            self._write()
            return
        self._scheduled = True
        loop.call_soon(self.flush)

    def emit_entry(self, entry: dict[str, object] | AccessLine) -> None:
        """Queue a line already shaped like the formatter's, without building a LogRecord."""
        self.acquire()
        try:
            self._lines.append(entry)
            if not self._scheduled:
                self._scheduled = True
                asyncio.get_running_loop().call_soon(self.flush)
        finally:
            self.release()

    def flush(self) -> None:
        """Write every queued line."""
        self.acquire()
        try:
            self._write()
        finally:
            self.release()

    def _write(self) -> None:
        self._scheduled = False
        if not self._lines:
            return
        lines, self._lines = self._lines, []
        rendered = []
        for line in lines:
            try:
                rendered.append(line if type(line) is str else _encoder.encode(line).decode())
            except Exception:  # one line that cannot be encoded is lost alone
                self.handleError(logging.makeLogRecord({"msg": "a log line could not be encoded"}))
        try:
            self.stream.write("\n".join(rendered) + "\n")
            self.stream.flush()
        except Exception:
            self.handleError(logging.makeLogRecord({"msg": f"{len(lines)} log lines lost"}))


def setup_logging(level: str = "INFO") -> None:
    """Send every logger's records to stderr as JSON lines."""
    # Not in the JSON lines, and looking them up costs a good share of each record.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = LoopBufferedHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class _DropQueryStrings(logging.Filter):
    """aiohttp's access log prints request targets with their query, where a WebSocket token may sit."""

    _QUERY = re.compile(r"\?[^\s\"]*")

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._QUERY.sub("?[redacted]", record.getMessage())
        record.args = ()
        for key, value in vars(record).items():  # aiohttp also passes the request line as an extra
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, self._QUERY.sub("?[redacted]", value))
        return True


def redact_access_queries() -> None:
    """Strip query strings from aiohttp's access log, however the server was started; idempotent."""
    logger = logging.getLogger("aiohttp.access")
    if not any(isinstance(f, _DropQueryStrings) for f in logger.filters):
        logger.addFilter(_DropQueryStrings())


class _ClientGarbageAtInfo(logging.Filter):
    """aiohttp logs a request its parser refuses (a NUL byte in a header, an over-long line) at ERROR
    with a traceback. That is the client's fault, not the server's: one INFO line naming the refusal,
    without the offending bytes (they may hold a token). The same for a body that does not decode by
    its Content-Encoding: the edge answers 400, then aiohttp, draining the rest of the body before it
    closes the connection, meets the error again and calls it unhandled."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        in_body = False
        if isinstance(exc, RequestPayloadError):
            in_body, exc = True, exc.__cause__  # the parser's refusal, which aiohttp raised it from
        if not isinstance(exc, HttpProcessingError) or not 400 <= exc.code < 500:
            return True
        record.levelno, record.levelname = logging.INFO, "INFO"
        if in_body:
            record.msg = "refused a request body that could not be read: %s (%d)"
            record.args = (type(exc).__name__, exc.code)
        else:
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else None
            record.msg = "refused a request that could not be parsed, from %s: %s (%d)"
            record.args = (remote, type(exc).__name__, exc.code)
        record.exc_info, record.exc_text = None, None
        return logging.getLogger(record.name).isEnabledFor(logging.INFO)


def quiet_client_errors() -> None:
    """Log requests aiohttp cannot parse as one INFO line, however the server was started; idempotent."""
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, _ClientGarbageAtInfo) for f in logger.filters):
        logger.addFilter(_ClientGarbageAtInfo())


def _direct(logger: logging.Logger) -> LoopBufferedHandler | None:
    """The JSON handler when it alone gets `logger`'s INFO lines (as `run.py` sets up): lines can
    go straight to it, since a LogRecord costs more than a fast request. None otherwise (tests
    capturing logs, a disabled level): an ordinary record is logged instead."""
    if not logger.isEnabledFor(logging.INFO) or not logger.propagate or logger.handlers:
        return None
    handlers = logging.getLogger().handlers
    return handlers[0] if len(handlers) == 1 and type(handlers[0]) is LoopBufferedHandler else None


def log_info(logger: logging.Logger, message: str, fields: dict[str, object]) -> None:
    """An INFO line with `fields`, from inside the event loop (one per award)."""
    handler = _direct(logger)
    if handler is None:
        logger.info(message, extra=fields)
        return
    entry: dict[str, object] = {"timestamp": iso(now_ms()), "level": "INFO", "logger": logger.name}
    entry["message"] = message
    entry.update(fields)
    if "correlationId" not in entry and (rid := request_id.get()) is not None:
        entry["correlationId"] = rid
    handler.emit_entry(entry)


def log_access(
    *,
    level: int,
    method: str,
    path: str,
    status: int,
    duration_ms: float,
    remote: str,
    peer: str | None = None,
    rid: str,
) -> None:
    """One request's line in `scoreboard.access` at `level` (INFO or DEBUG), from inside the event
    loop; `peer` only when the socket's peer is not the client `remote`."""
    handler = _direct(access_log)
    if handler is None:
        fields: dict[str, object] = {"method": method, "path": path, "status": status, "duration_ms": duration_ms}
        fields["remote"] = remote
        if peer is not None:
            fields["peer"] = peer
        access_log.log(level, "request", extra={**fields, "correlationId": rid})
        return
    name = "DEBUG" if level == logging.DEBUG else "INFO"
    handler.emit_entry(
        AccessLine(iso(now_ms()), name, _ACCESS, "request", method, path, status, duration_ms, remote, rid, peer)
    )
