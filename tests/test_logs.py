"""Logs: one JSON line per request with a correlation id; tokens and secrets never logged."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp import web

from app import create_app
from app.logs import JsonFormatter, LoopBufferedHandler, setup_logging

from .conftest import ACTION_SECRET, JWT_SECRET, Flow, MakeClient, make_config
from .contracts import until


def _lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    formatter = JsonFormatter()
    return [msgspec.json.decode(formatter.format(r)) for r in caplog.records]


@contextlib.contextmanager
def json_handler_alone() -> Iterator[io.StringIO]:
    """run.py's logging set-up (the JSON handler alone on the root, INFO), writing to a string."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    handler = LoopBufferedHandler(stream)
    handler.setFormatter(JsonFormatter())
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


async def test_access_line_per_request(client: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    resp = await client.get("/api/v1/scoreboard/top?limit=5", headers={"X-Request-ID": "req-123-456"})
    assert resp.headers["X-Request-ID"] == "req-123-456"
    access = [line for line in _lines(caplog) if line["logger"] == "scoreboard.access"]
    assert len(access) == 1
    line = access[0]
    assert line["method"] == "GET" and line["path"] == "/api/v1/scoreboard/top" and line["status"] == 200
    assert line["correlationId"] == "req-123-456" and isinstance(line["duration_ms"], float)
    assert line["timestamp"].endswith("Z") and line["level"] == "DEBUG"  # a public read


async def test_public_reads_log_at_debug_everything_else_at_info(
    client: Any, bearer: Any, caplog: pytest.LogCaptureFixture
) -> None:
    flow = Flow(client, bearer)
    assert (await flow.submit(await flow.token("alice", "q1"))).status == 200
    caplog.set_level(logging.INFO)
    caplog.clear()
    await client.get("/api/v1/scoreboard/top")  # public, answered: not at INFO
    await client.get("/healthz")
    await client.get("/nowhere")  # refused
    await client.post("/api/v1/scoreboard/top")  # wrong method
    await client.get("/api/v1/users/alice/score", headers=bearer("alice"))  # with credentials
    access = [
        (line["path"], line["status"], line["level"])
        for line in _lines(caplog)
        if line["logger"] == "scoreboard.access"
    ]
    assert access == [
        ("/nowhere", 404, "INFO"),
        ("/api/v1/scoreboard/top", 405, "INFO"),
        ("/api/v1/users/alice/score", 200, "INFO"),
    ]


async def test_access_line_names_the_client_behind_a_trusted_proxy(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_client(server={"trusted_proxies": ["127.0.0.1"]})
    caplog.set_level(logging.DEBUG)
    await client.get("/api/v1/scoreboard/top", headers={"X-Forwarded-For": "203.0.113.7"})
    await client.get("/nowhere", headers={"X-Forwarded-For": "2001:db8::7"})
    await client.get("/api/v1/scoreboard/top")  # straight from the proxy's own address
    access = [line for line in _lines(caplog) if line["logger"] == "scoreboard.access"]
    assert [(line["remote"], line.get("peer")) for line in access] == [
        ("203.0.113.7", "127.0.0.1"),
        ("2001:db8::7", "127.0.0.1"),
        ("127.0.0.1", None),  # the peer only when it differs
    ]
    assert "peer" not in access[2]


async def test_access_line_names_the_client_with_the_json_handler(make_client: MakeClient) -> None:
    client = await make_client(server={"trusted_proxies": ["127.0.0.1"]})
    with json_handler_alone() as stream:
        await client.get("/nowhere", headers={"X-Forwarded-For": "203.0.113.8", "X-Request-ID": "via-proxy"})
        await client.get("/nowhere", headers={"X-Request-ID": "direct"})
        await asyncio.sleep(0.05)
    lines = {line.get("correlationId"): line for line in map(msgspec.json.decode, stream.getvalue().splitlines())}
    assert lines["via-proxy"]["remote"] == "203.0.113.8" and lines["via-proxy"]["peer"] == "127.0.0.1"
    assert lines["direct"]["remote"] == "127.0.0.1" and "peer" not in lines["direct"]


@pytest.mark.parametrize("incoming", [None, "", "bad id with spaces", "x" * 200])
async def test_request_id_generated_when_missing_or_unsafe(client: Any, incoming: str | None) -> None:
    headers = {} if incoming is None else {"X-Request-ID": incoming}
    resp = await client.get("/nowhere", headers=headers)
    assert resp.status == 404
    rid = resp.headers["X-Request-ID"]
    assert rid != incoming and len(rid) == 16


async def test_award_line_and_no_secrets(flow: Flow, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token = await flow.token("alice", "quest-456")
    resp = await flow.client.post(
        "/api/v1/scoreboard/update?token=" + token,
        json={"actionToken": token, "actionId": "quest-456"},
        headers={**flow.bearer("alice"), "X-Request-ID": "corr-1"},
    )
    assert resp.status == 200
    lines = _lines(caplog)
    award = next(line for line in lines if line["message"] == "Score updated")
    assert award["correlationId"] == "corr-1"
    assert {k: award[k] for k in ("userId", "previousScore", "newScore", "actionType", "actionId")} == {
        "userId": "alice",
        "previousScore": 0,
        "newScore": 100,
        "actionType": "COMPLETE_QUEST",
        "actionId": "quest-456",
    }
    text = caplog.text + "".join(JsonFormatter().format(r) for r in caplog.records)
    bearer = flow.bearer("alice")["Authorization"].split()[1]
    for secret in (token, bearer.split(".")[2], JWT_SECRET.decode(), ACTION_SECRET.decode()):
        assert secret not in text


def test_formatter_exceptions_and_odd_extras() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "failed %s", ("here",), __import__("sys").exc_info()
        )
    record.odd = object()
    line = msgspec.json.decode(JsonFormatter().format(record))
    assert line["message"] == "failed here" and "ValueError: boom" in line["exception"] and "odd" in line


def test_setup_logging_installs_json_handler() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging("WARNING")
        assert root.level == logging.WARNING and isinstance(root.handlers[0].formatter, JsonFormatter)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


async def test_aiohttp_access_log_never_shows_query(client: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    await client.get("/api/v1/scoreboard/top?token=SECRET-IN-QUERY")
    assert "SECRET-IN-QUERY" not in caplog.text
    assert any("?[redacted]" in r.getMessage() for r in caplog.records if r.name == "aiohttp.access")


async def test_json_handler_gets_request_and_award_lines_once_per_loop_turn(flow: Flow) -> None:
    # With run.py's set-up (the JSON handler alone) these lines skip LogRecords: same content.
    with json_handler_alone() as stream:
        token = await flow.token("alice", "quest-9")
        resp = await flow.client.post(
            "/api/v1/scoreboard/update",
            json={"actionToken": token, "actionId": "quest-9"},
            headers={**flow.bearer("alice"), "X-Request-ID": "fast-1"},
        )
        assert resp.status == 200
        await asyncio.sleep(0.05)
    lines = [msgspec.json.decode(line) for line in stream.getvalue().splitlines()]
    mine = [line for line in lines if line.get("correlationId") == "fast-1"]
    award = next(line for line in mine if line["message"] == "Score updated")
    access = next(line for line in mine if line["logger"] == "scoreboard.access")
    assert award["newScore"] == 100 and award["level"] == "INFO" and award["timestamp"].endswith("Z")
    assert access["path"] == "/api/v1/scoreboard/update" and access["status"] == 200
    assert list(access)[:4] == ["timestamp", "level", "logger", "message"]  # the formatter's order
    assert access["level"] == "INFO" and access["remote"] == "127.0.0.1" and access["duration_ms"] >= 0
    assert token not in stream.getvalue()


def test_json_handler_outside_a_loop_writes_at_once() -> None:
    stream = io.StringIO()
    handler = LoopBufferedHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.handle(logging.LogRecord("t", logging.WARNING, __file__, 1, "from a thread", (), None))
    assert msgspec.json.decode(stream.getvalue())["message"] == "from a thread"


@pytest.mark.parametrize(
    ("garbage", "refusal"),
    [(b"X-Bad: a\x00b\r\n", "BadHttpMessage"), (b"X-Long: " + b"x" * 9000 + b"\r\n", "LineTooLong")],
    ids=["NUL byte in a header", "header over aiohttp's limit"],
)
async def test_a_request_the_parser_refuses_is_one_info_line(
    client: Any, caplog: pytest.LogCaptureFixture, garbage: bytes, refusal: str
) -> None:
    """Client garbage is the client's fault: never an ERROR with a traceback, and its bytes stay out."""
    caplog.set_level(logging.DEBUG)
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(
        b"GET /api/v1/scoreboard/top HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer SECRET-IN-HEADER\r\n" + garbage
    )
    writer.write(b"\r\n")
    answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.0 400") and b'"code":"VALIDATION_ERROR"' in answer
    refused = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert [(r.levelname, r.exc_info) for r in refused] == [("INFO", None)]
    assert refused[0].getMessage() == f"refused a request that could not be parsed, from 127.0.0.1: {refusal} (400)"
    assert "SECRET-IN-HEADER" not in caplog.text


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_body_not_in_its_content_encoding_is_one_info_line(
    client: Any, caplog: pytest.LogCaptureFixture, encoding: str
) -> None:
    """The client is answered 400; aiohttp, draining the rest of the body after the answer, meets
    the decoding error again and would log it as an unhandled ERROR with a traceback."""
    caplog.set_level(logging.DEBUG)
    reader, writer = await asyncio.open_connection(client.host, client.port)
    body = b'{"userIds":["alice"]}'
    writer.write(
        b"POST /api/v1/boards/global/lookup HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Encoding: {encoding}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    answer = await reader.read()  # the server closes the connection once it is done with it
    writer.close()
    assert answer.startswith(b"HTTP/1.1 400") and b'"code":"VALIDATION_ERROR"' in answer
    refused = [r for r in caplog.records if r.name == "aiohttp.server" and r.levelno >= logging.INFO]
    assert [(r.levelname, r.exc_info) for r in refused] == [("INFO", None)]
    assert refused[0].getMessage() == "refused a request body that could not be read: ContentEncodingError (400)"


@pytest.mark.parametrize(
    "framing",
    [b"Content-Length: 100\r\n\r\n{", b'Transfer-Encoding: chunked\r\n\r\n5\r\n{"use'],
    ids=["shorter than its length", "a chunked body cut short"],
)
async def test_a_client_gone_mid_body_is_no_server_fault(
    db_path: Path, storage: dict[str, Any], caplog: pytest.LogCaptureFixture, framing: bytes
) -> None:
    """Served as run.py serves (aiohttp's test server cancels a handler whose client left): the
    handler meets the lost connection while reading the body."""
    caplog.set_level(logging.DEBUG)
    runner = web.AppRunner(create_app(make_config(db_path, storage)), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        _, writer = await asyncio.open_connection(host, port)
        writer.write(b"POST /api/v1/boards/global/lookup HTTP/1.1\r\nHost: x\r\n" + framing)
        await writer.drain()
        await asyncio.sleep(0.05)  # the handler is waiting for the rest
        writer.close()

        async def logged() -> bool:
            return any(r.name == "scoreboard.access" for r in caplog.records)

        await until(logged, "the request's access line")
    finally:
        await runner.cleanup()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    [line] = [r for r in caplog.records if r.name == "scoreboard.access"]
    assert line.status == 400  # type: ignore[attr-defined]  # an `extra` of the access line
