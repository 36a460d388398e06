"""Trusted servers' score writes over HTTP, in every storage set-up: each board's operator (best
for both orders, set, incr), the Idempotency-Key's retries and conflicts, the period a write counts
in, and every refusal changing nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from multidict import CIMultiDict

from app.api.keys import SCOREBOARD

from ..conftest import envelope
from .scene import ATTEST_KEY, LIMITED_KEY, NEXT_MONDAY_MS, RACER_KEY, AppClient, Boards, Clock


async def test_best_keeps_the_best_for_both_orders(boards: Boards) -> None:
    # Higher is better: 50 beats 40; 45 does not beat 50.
    assert (await boards.write("high", {"userId": "ann", "score": 40}, key="a"))["improved"] is True
    improved = await boards.write("high", {"userId": "ann", "score": 50}, key="b")
    assert (improved["previousScore"], improved["newScore"], improved["improved"]) == (40, 50, True)
    worse = await boards.write("high", {"userId": "ann", "score": 45}, key="c")
    assert (worse["previousScore"], worse["newScore"], worse["improved"]) == (50, 50, False)
    # Lower is better (a time trial): 61000 beats 62000; 63000 does not.
    first = await boards.write("trial", {"userId": "ann", "score": 62000}, key="d")
    assert first["previousScore"] is None and first["improved"] is True and first["rank"] == 1
    assert (await boards.write("trial", {"userId": "ann", "score": 61000}, key="e"))["newScore"] == 61000
    assert (await boards.write("trial", {"userId": "ann", "score": 63000}, key="f"))["improved"] is False
    # Ties: the subscore decides (the board's way), then whoever reached the value first.
    await boards.write("trial", {"userId": "bob", "score": 61000, "subscore": 5}, key="g")
    await boards.write("trial", {"userId": "cid", "score": 61000, "subscore": 3}, key="h")
    await boards.write("trial", {"userId": "dan", "score": 61000, "subscore": 3}, key="i")
    assert await boards.top("trial") == [("ann", 61000), ("cid", 61000), ("dan", 61000), ("bob", 61000)]
    await boards.write("high", {"userId": "eve", "score": 50, "subscore": 1}, key="j")
    await boards.write("high", {"userId": "fay", "score": 50}, key="k")
    assert await boards.top("high") == [("eve", 50), ("ann", 50), ("fay", 50)]
    # Reaching the same best again keeps the place of whoever got there first.
    assert (await boards.write("high", {"userId": "ann", "score": 50}, key="l"))["improved"] is False
    assert await boards.top("high") == [("eve", 50), ("ann", 50), ("fay", 50)]


async def test_a_trusted_write_whose_period_ended_while_it_waited_counts_in_the_new_one(
    boards: Boards, client: AppClient, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock.now_ms = NEXT_MONDAY_MS - 1  # asked for in the last millisecond of the week
    store = client.app[SCOREBOARD].store
    write_score = store.write_score

    async def waited(write: Any) -> Any:  # the week ends before its transaction begins
        clock.now_ms = max(clock.now_ms, NEXT_MONDAY_MS + 1000)
        return await write_score(write)

    monkeypatch.setattr(store, "write_score", waited)
    assert (await boards.write("weekly", {"userId": "ann", "score": 5}))["newScore"] == 5
    assert await boards.top("weekly", period="2026-W49") == []
    assert await boards.top("weekly") == [("ann", 5)]


async def test_set_replaces_and_incr_adds(boards: Boards) -> None:
    await boards.write("latest", {"userId": "ann", "score": 900}, key="a")
    lower = await boards.write("latest", {"userId": "ann", "score": -5}, key="b")
    assert (lower["previousScore"], lower["newScore"], lower["improved"]) == (900, -5, True)
    assert await boards.top("latest") == [("ann", -5)]
    added = await boards.write("global", {"userId": "ann", "score": 30}, key="c")
    assert (added["previousScore"], added["newScore"]) == (None, 30)
    added = await boards.write("global", {"userId": "ann", "score": 12}, key="d")
    assert (added["previousScore"], added["newScore"]) == (30, 42)


async def test_idempotency_key_answers_retries_and_refuses_other_bodies(boards: Boards) -> None:
    body = {"userId": "ann", "score": 70, "metadata": {"car": "Škoda", "laps": [1, 2]}}
    first = await boards.write("high", body, key="same")
    await boards.write("high", {"userId": "bob", "score": 99}, key="other")
    again = await boards.write("high", body, key="same")
    assert again == first  # the first answer, rank included, though bob passed ann since
    assert await boards.top("high") == [("bob", 99), ("ann", 70)]
    conflict = await boards.write("high", {**body, "score": 71}, key="same", status=409)
    assert conflict["code"] == "IDEMPOTENCY_CONFLICT"
    elsewhere = await boards.write("latest", body, key="same", status=409)
    assert elsewhere["code"] == "IDEMPOTENCY_CONFLICT"  # a key names one request, board included
    entry = (await boards.get("/api/v1/boards/high/top"))["leaderboard"][1]
    assert entry["metadata"] == {"car": "Škoda", "laps": [1, 2]}
    assert "subscore" not in entry


async def test_concurrent_retries_of_one_key_write_once(boards: Boards) -> None:
    body = {"userId": "ann", "score": 5}
    answers = await asyncio.gather(*(boards.write("global", body, key="dup") for _ in range(20)))
    assert all(a == answers[0] for a in answers)
    assert await boards.top("global") == [("ann", 5)]


async def test_trusted_write_refusals(boards: Boards) -> None:
    body = {"userId": "ann", "score": 1}
    missing = await boards.write("high", body, key=None, status=400)
    assert missing["code"] == "VALIDATION_ERROR"
    for bad_key in ("", "x" * 101, "tab\there"):
        error = await boards.write("high", body, key=bad_key, status=400)
        assert error["code"] == "VALIDATION_ERROR", bad_key
    twice = await boards.client.post(
        "/api/v1/boards/high/scores",
        json=body,
        headers=CIMultiDict(
            [("Authorization", f"Bearer {RACER_KEY}"), ("Idempotency-Key", "a"), ("Idempotency-Key", "b")]
        ),
    )
    assert (twice.status, (await envelope(twice))["error"]["code"]) == (400, "VALIDATION_ERROR")
    for bad_key in ("ünï", "tab\tin"):
        error = await boards.write("high", body, key=bad_key, status=400)
        assert error["code"] == "VALIDATION_ERROR", bad_key
    # The contract's "1-100 characters": a space within is one too.
    for good_key in ("race 41", "x" * 100, "!~race:7/lap#2"):
        assert (await boards.write("latest", {"userId": "kim", "score": 1}, key=good_key))["userId"] == "kim"
    assert (await boards.write("high", body, service_key="wrong", status=401))["code"] == "UNAUTHORIZED"
    assert (await boards.write("high", body, service_key=LIMITED_KEY, status=403))["code"] == "FORBIDDEN"
    assert (await boards.write("latest", body, service_key=LIMITED_KEY))["improved"] is True
    assert (await boards.write("high", body, service_key=ATTEST_KEY, status=403))["code"] == "FORBIDDEN"
    assert (await boards.write("nope", body, status=404))["code"] == "BOARD_NOT_FOUND"
    for bad in (
        {"userId": "ann", "score": 2**53 + 1},
        {"userId": "ann", "score": 1.5},
        {"userId": "ann", "score": "1"},
        {"userId": "ann", "score": 1, "metadata": {"blob": "x" * 1100}},
        {"userId": "ann", "score": 1, "metadata": [1, 2]},
        {"userId": "bad id", "score": 1},
        {"score": 1},
    ):
        error = await boards.write("high", bad, key="bad", status=400)
        assert error["code"] == "VALIDATION_ERROR", bad
    # Numbers as written, which json= would round first: none is rounded into a valid one.
    for raw in (
        b'{"userId":"ann","score":9007199254740993.0}',
        b'{"userId":"ann","score":-9007199254740993.0}',
        b'{"userId":"ann","score":9007199254740992.5}',
        b'{"userId":"ann","score":0.99999999999999999}',
        b'{"userId":"ann","score":1,"subscore":9007199254740993.0}',
        b'{"userId":"ann","score":1,"metadata":{"x":1e400}}',
    ):
        headers = {"Authorization": f"Bearer {RACER_KEY}", "Idempotency-Key": "raw", "Content-Type": "application/json"}
        resp = await boards.client.post("/api/v1/boards/high/scores", data=raw, headers=headers)
        assert (resp.status, (await envelope(resp))["error"]["code"]) == (400, "VALIDATION_ERROR"), raw
    assert await boards.top("high") == []
    # A whole number written 5.0 is an integer (as JSON Schema counts it); metadata stays as sent.
    headers = {"Authorization": f"Bearer {RACER_KEY}", "Idempotency-Key": "whole", "Content-Type": "application/json"}
    raw = b'{"userId":"cy","score":5.0,"metadata":{"x":1.0}}'
    resp = await boards.client.post("/api/v1/boards/latest/scores", data=raw, headers=headers)
    assert resp.status == 200, await resp.text()
    (entry,) = [e for e in (await boards.get("/api/v1/boards/latest/top"))["leaderboard"] if e["userId"] == "cy"]
    assert (entry["score"], entry["metadata"]) == (5, {"x": 1.0}) and isinstance(entry["metadata"]["x"], float)
    # A user's JWT is not a service key.
    resp = await boards.client.post(
        "/api/v1/boards/high/scores", json=body, headers={**boards.bearer("ann"), "Idempotency-Key": "j"}
    )
    assert resp.status == 401


async def test_a_key_that_may_not_write_is_refused_before_its_request_is_read(boards: Boards) -> None:
    """403 FORBIDDEN whatever else is wrong: the key's scope and boards are checked first."""
    bad = {"userId": "bad id", "score": "x"}
    assert (await boards.write("high", bad, key=None, service_key=ATTEST_KEY, status=403))["code"] == "FORBIDDEN"
    assert (await boards.write("high", bad, key=None, service_key=LIMITED_KEY, status=403))["code"] == "FORBIDDEN"
    assert (await boards.write("Nope", bad, key=None, service_key=LIMITED_KEY, status=403))["code"] == "FORBIDDEN"
    resp = await boards.client.post(
        "/api/v1/actions/bad%20id/attest", data=b"{bad", headers={"Authorization": f"Bearer {LIMITED_KEY}"}
    )
    assert (resp.status, (await envelope(resp))["error"]["code"]) == (403, "FORBIDDEN")
    assert await boards.top("high") == []


async def test_a_second_authorization_header_is_refused(boards: Boards) -> None:
    body = {"userId": "ann", "score": 1}
    for second in (f"Bearer {RACER_KEY}", "Bearer other"):
        resp = await boards.client.post(
            "/api/v1/boards/high/scores",
            json=body,
            headers=CIMultiDict(
                [("Authorization", f"Bearer {RACER_KEY}"), ("Authorization", second), ("Idempotency-Key", "a")]
            ),
        )
        assert (resp.status, (await envelope(resp))["error"]["code"]) == (401, "UNAUTHORIZED")
    assert await boards.top("high") == []


@pytest.mark.parametrize(
    ("authorization", "challenge"),
    [
        (None, 'Bearer realm="scoreboard"'),
        ("Bearer ", 'Bearer realm="scoreboard"'),
        ("Basic cmFjZXI6eA==", 'Bearer realm="scoreboard"'),
        (f"Bearer {RACER_KEY}x", 'Bearer realm="scoreboard", error="invalid_token"'),
    ],
)
async def test_a_refused_service_key_names_the_challenge(
    boards: Boards, authorization: str | None, challenge: str
) -> None:
    """RFC 6750: `invalid_token` only where a key was sent; none sent, no error code."""
    headers = {"Idempotency-Key": "a"} | ({} if authorization is None else {"Authorization": authorization})
    resp = await boards.client.post("/api/v1/boards/high/scores", json={"userId": "ann", "score": 1}, headers=headers)
    assert (resp.status, (await envelope(resp))["error"]["code"]) == (401, "UNAUTHORIZED")
    assert resp.headers.getall("WWW-Authenticate") == [challenge]
    assert await boards.top("high") == []


async def test_an_incr_sum_beyond_the_range_is_refused(boards: Boards) -> None:
    await boards.write("global", {"userId": "ann", "score": 2**53}, key="a")
    refused = await boards.write("global", {"userId": "ann", "score": 2**53}, key="b", status=400)
    assert refused["code"] == "VALIDATION_ERROR"
    assert await boards.top("global") == [("ann", 2**53)]
