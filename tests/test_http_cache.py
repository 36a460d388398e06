"""HTTP caching of the public board read: `ETag`, `If-None-Match` → 304 and `Cache-Control` on
GET /top (and HEAD), so a browser or a CDN in front can keep it; a user's own score stays private."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from app import top_cache
from app.api.envelope import ETAG_PATTERN, PUBLIC_CACHE_CONTROL_PATTERN, etag_of, ok_body
from app.api.openapi import build_openapi
from app.api.routes import ENDPOINTS

from .conftest import Flow, MakeClient, envelope, make_config

TOP = "/api/v1/scoreboard/top"


async def _top(client: Any, **headers: str) -> tuple[int, Any, bytes]:
    resp = await client.get(TOP, headers=headers)
    return resp.status, resp.headers, await resp.read()


async def test_top_carries_an_etag_of_its_body_and_public_cache_control(flow: Flow, client: Any) -> None:
    await flow.award("alice", "q1")
    status, headers, body = await _top(client)
    assert status == 200
    assert headers["ETag"] == etag_of(body) and headers["ETag"].startswith('"')  # strong: no W/
    assert headers["Cache-Control"] == "public, max-age=1"
    head = await client.head(TOP)
    assert head.status == 200 and head.headers["ETag"] == headers["ETag"] and await head.read() == b""
    assert head.headers["Cache-Control"] == "public, max-age=1"


async def test_if_none_match_with_the_current_tag_answers_304_without_a_body(flow: Flow, client: Any) -> None:
    await flow.award("alice", "q1")
    _, headers, _ = await _top(client)
    etag = headers["ETag"]
    for asked in (etag, f"W/{etag}", f'"other", {etag}', "*"):  # weak comparison, a list, any
        for method in ("GET", "HEAD"):
            resp = await client.request(method, TOP, headers={"If-None-Match": asked})
            assert resp.status == 304, (method, asked)
            assert await resp.read() == b""
            assert resp.headers["ETag"] == etag and resp.headers["Cache-Control"] == "public, max-age=1"
            assert "X-Request-ID" in resp.headers
    for stale in ('"0123456789abcdef0123"', 'W/"nope"', "garbage", ""):
        status, again, body = await _top(client, **{"If-None-Match": stale})
        assert status == 200 and again["ETag"] == etag and msgspec.json.decode(body)["success"] is True


async def test_the_etag_changes_whenever_the_body_does(flow: Flow, client: Any, bearer: Any) -> None:
    await flow.award("alice", "q1")
    _, first, first_body = await _top(client)
    assert (await _top(client))[1]["ETag"] == first["ETag"]  # unchanged board: same tag
    await flow.award("bob", "q1", "DEFEAT_BOSS")  # bob leads now
    status, second, second_body = await _top(client, **{"If-None-Match": first["ETag"]})
    assert status == 200 and second_body != first_body and second["ETag"] == etag_of(second_body) != first["ETag"]
    # A rename changes the body too.
    await client.post(
        "/api/v1/actions/initialize",
        json={"actionType": "COMPLETE_QUEST", "actionId": "rename"},
        headers=bearer("bob", name="Robert"),
    )
    status, third, third_body = await _top(client, **{"If-None-Match": second["ETag"]})
    assert status == 200 and b"Robert" in third_body and third["ETag"] != second["ETag"]
    # Each limit is its own body, with its own tag.
    limited = await client.get(TOP, params={"limit": "1"})
    assert limited.headers["ETag"] == etag_of(await limited.read()) != third["ETag"]


async def test_equal_boards_give_equal_tags_in_every_process(flow: Flow, client: Any, make_client: MakeClient) -> None:
    """A CDN in front of several processes sees one tag for one board: the tag is the body's."""
    await flow.award("alice", "q1")
    await flow.award("bob", "q2", "DEFEAT_BOSS")
    _, headers, body = await _top(client)
    other = await make_client()  # another app on the same storage, its board loaded from it
    status, other_headers, empty = await _top(other, **{"If-None-Match": headers["ETag"]})
    assert status == 304 and other_headers["ETag"] == headers["ETag"] and empty == b""
    assert (await _top(other))[2] == body


async def test_the_tag_is_hashed_once_per_answer_not_per_request(
    flow: Flow, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once per rendered answer: on a change of the places shown, and in the Redis modes also once
    a second (the kept answer's age limit), never per request."""
    await flow.award("alice", "q1")
    rendered: list[bytes] = []
    hashed: list[bytes] = []

    def render(data: Any) -> bytes:
        rendered.append(ok_body(data))
        return rendered[-1]

    def counted(body: bytes) -> str:
        hashed.append(body)
        return etag_of(body)

    monkeypatch.setattr(top_cache, "ok_body", render)
    monkeypatch.setattr(top_cache, "etag_of", counted)
    for _ in range(20):
        assert (await _top(client))[0] == 200
    await flow.award("bob", "q1", "DEFEAT_BOSS")  # the award's own answer renders the new top
    for _ in range(20):
        await _top(client)
    assert hashed == rendered and 1 <= len(hashed) <= 4, len(hashed)


@pytest.mark.parametrize(("seconds", "expected"), [(0, "no-cache"), (30, "public, max-age=30")])
async def test_cache_seconds_are_configurable(
    make_client: MakeClient, db_path: Path, seconds: int, expected: str
) -> None:
    client = await make_client(make_config(db_path, server={"read_cache_seconds": seconds}))
    _, headers, _ = await _top(client)
    assert headers["Cache-Control"] == expected and "ETag" in headers


async def test_refusals_and_private_reads_are_not_publicly_cacheable(flow: Flow, client: Any, bearer: Any) -> None:
    await flow.award("alice", "q1")
    bad = await client.get(TOP, params={"limit": "0"})
    assert bad.status == 400 and "ETag" not in bad.headers and "Cache-Control" not in bad.headers
    score = await client.get("/api/v1/users/alice/score", headers=bearer("bob"))
    assert (await envelope(score))["data"]["score"] == 100
    assert score.headers["Cache-Control"] == "private, no-store" and "ETag" not in score.headers
    unauthorized = await client.get("/api/v1/users/alice/score")
    assert unauthorized.status == 401 and "public" not in unauthorized.headers.get("Cache-Control", "")


def test_the_document_describes_the_headers_and_the_304() -> None:
    paths = build_openapi(ENDPOINTS, version="test")["paths"]
    top = paths[TOP]["get"]
    assert {"name": "If-None-Match", "in": "header"}.items() <= top["parameters"][-1].items()
    ok, not_modified = top["responses"]["200"], top["responses"]["304"]
    for answer in (ok, not_modified):
        assert answer["headers"]["ETag"]["schema"]["pattern"] == ETAG_PATTERN
        assert answer["headers"]["Cache-Control"]["schema"]["pattern"] == PUBLIC_CACHE_CONTROL_PATTERN
    assert "content" not in not_modified and "content" in ok
    score = paths["/api/v1/users/{userId}/score"]["get"]["responses"]["200"]
    assert score["headers"]["Cache-Control"]["schema"] == {"const": "private, no-store"}
    assert "304" not in paths["/api/v1/users/{userId}/score"]["get"]["responses"]
