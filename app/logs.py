"""Structured logs: one JSON object per line, with the request's correlation id."""

from __future__ import annotations

import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

import msgspec

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

# Attributes every LogRecord has; anything else was passed through `extra=` and is emitted.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}
_encoder = msgspec.json.Encoder(enc_hook=str)


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON line: timestamp, level, logger, message, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
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


def setup_logging(level: str = "INFO") -> None:
    """Send every logger's records to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
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
