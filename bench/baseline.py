"""The bare aiohttp baseline: hello world, PyJWT + one Redis ZINCRBY, and a raw broadcast to N sockets.

Run as `python -m bench.baseline --port P` (secret and Redis from BENCH_* environment variables).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import jwt
import redis.asyncio as aioredis
from aiohttp import WSMsgType, web

CLIENTS = web.AppKey("clients", dict)
REDIS = web.AppKey("redis", object)
WAVE_CHUNK = 256  # sockets written between yields, as the hub does


def text_frame(payload: bytes) -> bytes:
    """An unmasked server text frame, built once per wave."""
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 65536:
        return bytes((0x81, 126)) + size.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + size.to_bytes(8, "big") + payload


def wave_payload(size: int) -> bytes:
    """A leaderboard_update-shaped message of about `size` bytes, stamped now."""
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    head = b'{"type":"leaderboard_update","data":{"leaderboard":[],"updatedAt":"' + stamp.encode() + b'"},"pad":"'
    return head + b"x" * max(0, size - len(head) - 2) + b'"}'


async def hello(_: web.Request) -> web.Response:
    return web.Response(text="Hello, World!")


async def zincrby(request: web.Request) -> web.Response:
    """Verify the bearer JWT (PyJWT, HS256) and add 1 to the caller in one sorted set."""
    header = request.headers.get("Authorization", "")
    try:
        claims = jwt.decode(header.removeprefix("Bearer "), SECRET, algorithms=["HS256"])
    except jwt.PyJWTError:
        return web.json_response({"success": False, "error": {"code": "UNAUTHORIZED"}}, status=401)
    client = request.app[REDIS]
    if not isinstance(client, aioredis.Redis):
        return web.json_response({"success": False, "error": {"code": "SERVICE_UNAVAILABLE"}}, status=503)
    score = await client.zincrby(f"{PREFIX}:bench-zset", 1, claims["sub"])
    return web.json_response({"success": True, "data": {"userId": claims["sub"], "score": score}})


async def websocket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=False, max_msg_size=4096)
    await ws.prepare(request)
    clients = request.app[CLIENTS]
    clients[ws] = request.transport
    try:
        async for message in ws:
            if message.type == WSMsgType.ERROR:
                break
    finally:
        clients.pop(ws, None)
    return ws


async def broadcast(request: web.Request) -> web.Response:
    """Send `n` waves of `size`-byte messages to every socket as fast as the loop allows."""
    waves = int(request.query.get("n", "1"))
    size = int(request.query.get("size", "1024"))
    started = time.perf_counter()
    writes = 0
    for _ in range(waves):
        frame = text_frame(wave_payload(size))
        for i, transport in enumerate(list(request.app[CLIENTS].values())):
            if transport is not None and not transport.is_closing():
                transport.write(frame)
                writes += 1
            if i % WAVE_CHUNK == WAVE_CHUNK - 1:
                await asyncio.sleep(0)
        await asyncio.sleep(0)
    seconds = time.perf_counter() - started
    return web.Response(text=json.dumps({"waves": waves, "writes": writes, "seconds": seconds}))


async def _redis(app: web.Application) -> AsyncIterator[None]:
    url = os.environ.get("BENCH_REDIS_URL")
    client = aioredis.Redis.from_url(url, max_connections=64) if url else None
    app[REDIS] = client
    yield
    if client is not None:
        await client.aclose()


def make_app() -> web.Application:
    app = web.Application()
    app[CLIENTS] = {}
    app.cleanup_ctx.append(_redis)
    app.router.add_get("/hello", hello)
    app.router.add_post("/zincrby", zincrby)
    app.router.add_get("/ws", websocket)
    app.router.add_post("/broadcast", broadcast)
    return app


SECRET = os.environ.get("BENCH_JWT_SECRET", "")
PREFIX = os.environ.get("BENCH_REDIS_PREFIX", "bench_baseline")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    import uvloop

    uvloop.install()
    web.run_app(make_app(), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
