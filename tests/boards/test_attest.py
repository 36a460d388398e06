"""Actions a trusted game server must attest (`attest = true`), in every storage set-up: the update
is refused with 409 NOT_ATTESTED, changing nothing, until the attestation, and the same token then
awards; an attestation counts for its user and action only, and once; attesting is idempotent; the
attest route's refusals change nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from app.api.keys import SCOREBOARD
from app.clock import iso

from ..conftest import Flow, Snapshot, envelope
from .scene import (
    ACTIONS,
    ATTEST_KEY,
    LIMITED_KEY,
    RACER_KEY,
    SERVICES,
    WEDNESDAY_MS,
    AppClient,
    Boards,
    Clock,
    app_with_clock,
    boards_config,
    sha,
)

JUDGE_KEY = "judge-service-key-0123456789abcdef"  # a second service that may attest
WIN_RACE = {"score": 250, "attest": True, "boards": ["global", "weekly"]}


@pytest.fixture
async def client(aiohttp_client: Any, db_path: Path, storage: dict[str, Any], clock: Clock) -> AppClient:
    """The app of scene.py with WIN_RACE, an action a trusted server must attest, and a second
    service (`judge`) that may attest."""
    services = {**SERVICES, "judge": {"key_sha256": sha(JUDGE_KEY), "scopes": ["actions:attest"]}}
    config = boards_config(db_path, storage, actions={**ACTIONS, "WIN_RACE": WIN_RACE}, services=services)
    app_client: AppClient = await aiohttp_client(app_with_clock(config, clock))
    return app_client


@pytest.fixture
def boards(client: AppClient, bearer: Any) -> Boards:
    """The board routes against `client`."""
    return Boards(client, bearer)


async def attest(client: AppClient, action_id: str, user_id: str, *, key: str = ATTEST_KEY, status: int = 200) -> Any:
    """A trusted server's attest of the user's action; its data, or its error."""
    resp = await client.post(
        f"/api/v1/actions/{action_id}/attest", json={"userId": user_id}, headers={"Authorization": f"Bearer {key}"}
    )
    answer = await envelope(resp)
    assert resp.status == status, answer
    return answer["data"] if answer["success"] else answer["error"]


async def refused(flow: Flow, token: str, user: str, action_id: str, code: str = "NOT_ATTESTED") -> Any:
    """An update refused with 409 and `code`; its error."""
    resp = await flow.submit(token, user, action_id)
    error = (await envelope(resp))["error"]
    assert (resp.status, error["code"]) == (409, code), error
    return error


async def awarded(flow: Flow, token: str, user: str, action_id: str) -> Any:
    """An update that awards; its data."""
    resp = await flow.submit(token, user, action_id)
    body = await envelope(resp)
    assert resp.status == 200, body
    return body["data"]


async def test_the_catalog_says_which_actions_need_an_attestation(client: AppClient) -> None:
    actions = {a["type"]: a["attest"] for a in (await envelope(await client.get("/api/v1/actions")))["data"]["actions"]}
    assert actions["WIN_RACE"] is True
    assert not any(needs for name, needs in actions.items() if name != "WIN_RACE")


async def test_an_update_waits_for_its_attestation_and_the_same_token_then_awards(
    flow: Flow, boards: Boards, client: AppClient, snapshot: Snapshot
) -> None:
    token = await flow.token("alice", "race-1", "WIN_RACE")
    before = await snapshot()
    for _ in range(2):  # refused as often as it is sent, each time changing nothing
        error = await refused(flow, token, "alice", "race-1")
        assert error["details"] == {"actionId": "race-1"}
        assert await snapshot() == before
    attested = await attest(client, "race-1", "alice")
    assert attested == {"actionId": "race-1", "userId": "alice", "attestedAt": iso(WEDNESDAY_MS)}
    (row,) = (await snapshot())["attestations"]
    assert row == ("alice", "race-1", "attester", WEDNESDAY_MS)
    data = await awarded(flow, token, "alice", "race-1")
    assert (data["previousScore"], data["newScore"], data["scoreIncrement"]) == (0, 250, 250)
    assert [(b["board"], b["newScore"]) for b in data["boards"]] == [("global", 250), ("weekly", 250)]
    assert (await snapshot())["attestations"] == []  # spent by the award, in its transaction
    await refused(flow, token, "alice", "race-1", "TOKEN_ALREADY_USED")
    assert await boards.top("global") == [("alice", 250)]


async def test_a_refusal_frees_the_nonce_gate(flow: Flow, client: AppClient) -> None:
    # In the Redis modes the gate claims the nonce before the database: a refusal must free it at
    # once, or the token would wait out the claim (or, confirmed, be refused for good).
    token = await flow.token("alice", "race-1", "WIN_RACE")
    await refused(flow, token, "alice", "race-1")
    scoreboard = client.app[SCOREBOARD]
    nonce = scoreboard.tokens.verify(token).nonce
    attempt = await scoreboard.gate.claim(nonce)
    assert attempt is not None  # nobody holds it
    await scoreboard.gate.release(nonce, attempt)
    await attest(client, "race-1", "alice")
    assert (await awarded(flow, token, "alice", "race-1"))["newScore"] == 250


async def test_an_attestation_counts_for_its_user_and_action_only(
    flow: Flow, boards: Boards, client: AppClient
) -> None:
    alice = await flow.token("alice", "race-1", "WIN_RACE")
    await attest(client, "race-1", "bob")  # the same action id, another user
    await attest(client, "race-2", "alice")  # the same user, another action id
    await attest(client, "race-1", "Alice")  # ids are case-sensitive
    await refused(flow, alice, "alice", "race-1")
    assert await boards.top("global") == []
    await attest(client, "race-1", "alice")
    assert (await awarded(flow, alice, "alice", "race-1"))["newScore"] == 250
    # The others' attestations stay theirs, and each awards its own action.
    bob = await flow.token("bob", "race-1", "WIN_RACE")
    assert (await awarded(flow, bob, "bob", "race-1"))["newScore"] == 250
    second = await flow.token("alice", "race-2", "WIN_RACE")
    assert (await awarded(flow, second, "alice", "race-2"))["newScore"] == 500
    assert await boards.top("global") == [("alice", 500), ("bob", 250)]


async def test_an_attestation_is_spent_once(flow: Flow, boards: Boards, client: AppClient, snapshot: Snapshot) -> None:
    # Two tokens for one action, both issued before either is used: one attestation awards one.
    first = await flow.token("alice", "race-1", "WIN_RACE")
    second = await flow.token("alice", "race-1", "WIN_RACE")
    await attest(client, "race-1", "alice")
    await awarded(flow, first, "alice", "race-1")
    await refused(flow, second, "alice", "race-1", "ACTION_ALREADY_COMPLETED")
    # Attested again, the action is still done once: the refusal leaves the new attestation as it is.
    await attest(client, "race-1", "alice")
    before = await snapshot()
    await refused(flow, second, "alice", "race-1", "ACTION_ALREADY_COMPLETED")
    assert await snapshot() == before and len(before["attestations"]) == 1
    assert await boards.top("global") == [("alice", 250)]


async def test_actions_without_attest_need_none(
    flow: Flow, boards: Boards, client: AppClient, snapshot: Snapshot
) -> None:
    assert (await flow.award("alice", "q1"))["newScore"] == 100
    # An attestation of such an action is not asked for, so not spent.
    await attest(client, "q2", "alice")
    assert (await flow.award("alice", "q2"))["newScore"] == 200
    assert [row[:2] for row in (await snapshot())["attestations"]] == [("alice", "q2")]
    assert await boards.top("global") == [("alice", 200)]


async def test_attesting_again_answers_the_first_and_changes_nothing(
    client: AppClient, clock: Clock, snapshot: Snapshot
) -> None:
    first = await attest(client, "race-1", "alice")
    before = await snapshot()
    clock.now_ms += 60_000
    assert await attest(client, "race-1", "alice") == first
    assert await attest(client, "race-1", "alice", key=JUDGE_KEY) == first  # whichever service attests
    assert await snapshot() == before
    (row,) = before["attestations"]
    assert row == ("alice", "race-1", "attester", WEDNESDAY_MS)


async def test_concurrent_attests_hold_one(client: AppClient, snapshot: Snapshot) -> None:
    answers = await asyncio.gather(
        *(attest(client, "race-1", "alice", key=ATTEST_KEY if i % 2 else JUDGE_KEY) for i in range(20))
    )
    assert all(answer == answers[0] for answer in answers)
    assert len((await snapshot())["attestations"]) == 1


async def test_one_token_racing_with_itself_after_its_attestation_awards_once(
    flow: Flow, boards: Boards, client: AppClient, snapshot: Snapshot
) -> None:
    token = await flow.token("alice", "race-1", "WIN_RACE")
    await attest(client, "race-1", "alice")
    answers = await asyncio.gather(*(flow.submit(token, "alice", "race-1") for _ in range(50)))
    bodies = [await envelope(resp) for resp in answers]
    assert sorted(resp.status for resp in answers).count(200) == 1
    assert {b["error"]["code"] for b in bodies if not b["success"]} == {"TOKEN_ALREADY_USED"}
    for board in ("global", "weekly"):
        assert await boards.top(board) == [("alice", 250)]
    rows = await snapshot()
    assert len(rows["score_history"]) == 1 and rows["attestations"] == []


ATTEST = "/api/v1/actions/race-1/attest"
# (name, path, Authorization header or None, body: JSON or raw bytes, status, code)
RefusalCase = tuple[str, str, str | None, Any, int, str]
REFUSALS: list[RefusalCase] = [
    ("no key", ATTEST, None, {"userId": "alice"}, 401, "UNAUTHORIZED"),
    ("not a bearer", ATTEST, f"Basic {ATTEST_KEY}", {"userId": "alice"}, 401, "UNAUTHORIZED"),
    ("unknown key", ATTEST, "Bearer not-a-key-of-this-server", {"userId": "alice"}, 401, "UNAUTHORIZED"),
    ("a key's first characters", ATTEST, f"Bearer {ATTEST_KEY[:-1]}", {"userId": "alice"}, 401, "UNAUTHORIZED"),
    ("non-ASCII key", ATTEST, "Bearer kéy", {"userId": "alice"}, 401, "UNAUTHORIZED"),
    ("no scope: scores:write only", ATTEST, f"Bearer {RACER_KEY}", {"userId": "alice"}, 403, "FORBIDDEN"),
    ("no scope: one board", ATTEST, f"Bearer {LIMITED_KEY}", {"userId": "alice"}, 403, "FORBIDDEN"),
    ("not JSON", ATTEST, "", b"{not json", 400, "VALIDATION_ERROR"),
    ("JSON array", ATTEST, "", b"[]", 400, "VALIDATION_ERROR"),
    ("JSON string", ATTEST, "", b'"alice"', 400, "VALIDATION_ERROR"),
    ("empty body", ATTEST, "", b"", 400, "VALIDATION_ERROR"),
    ("no userId", ATTEST, "", {"actionId": "race-1"}, 400, "VALIDATION_ERROR"),
    ("null userId", ATTEST, "", {"userId": None}, 400, "VALIDATION_ERROR"),
    ("number userId", ATTEST, "", {"userId": 7}, 400, "VALIDATION_ERROR"),
    ("invalid UTF-8", ATTEST, "", b'{"userId":"al\xffce"}', 400, "VALIDATION_ERROR"),
    ("invalid UTF-8 in an ignored field", ATTEST, "", b'{"userId":"alice","x":"\xc3\x28"}', 400, "VALIDATION_ERROR"),
    ("lone surrogate", ATTEST, "", b'{"userId":"alice\\ud800"}', 400, "VALIDATION_ERROR"),
    (
        "nested 1000 deep in an ignored field",
        ATTEST,
        "",
        b'{"userId":"alice","x":' + b"[" * 1000 + b"]" * 1000 + b"}",
        400,
        "VALIDATION_ERROR",
    ),
    ("oversize body", ATTEST, "", {"userId": "alice", "x": "y" * 9000}, 413, "PAYLOAD_TOO_LARGE"),
    *(
        (f"userId {bad!r}", ATTEST, "", {"userId": bad}, 400, "VALIDATION_ERROR")
        for bad in (
            "",
            "a" * 101,
            "alice\n",
            "al ice",
            "al/ice",
            "alice\x00",
            "ünï",
            "\uff41lice",  # a fullwidth a
            "alice\u200b",  # a zero-width space
        )
    ),
    *(
        (f"actionId {raw!r}", f"/api/v1/actions/{quoted}/attest", "", {"userId": "alice"}, 400, "VALIDATION_ERROR")
        for raw, quoted in (
            ("race-1\n", "race-1%0A"),
            ("race 1", "race%201"),
            ("r" * 101, "r" * 101),
            ("rénne", "r%C3%A9nne"),
            ("\uff11", "%EF%BC%91"),  # a fullwidth 1
            ("race\x00", "race%00"),
        )
    ),
    ("wrong method", ATTEST.replace("race-1", "race-2"), "", None, 405, "METHOD_NOT_ALLOWED"),
]


@pytest.mark.parametrize("case", REFUSALS, ids=[c[0] for c in REFUSALS])
async def test_attest_refusals_change_nothing(
    case: RefusalCase, flow: Flow, client: AppClient, snapshot: Snapshot
) -> None:
    name, path, authorization, body, status, code = case
    token = await flow.token("alice", "race-1", "WIN_RACE")
    before = await snapshot()
    headers = {} if authorization is None else {"Authorization": authorization or f"Bearer {ATTEST_KEY}"}
    kwargs: dict[str, Any] = {"headers": headers}
    if isinstance(body, bytes):
        kwargs["data"] = body
    elif body is not None:
        kwargs["json"] = body
    resp = await client.request("GET" if name == "wrong method" else "POST", path, **kwargs)
    error = (await envelope(resp))["error"]
    assert (resp.status, error["code"]) == (status, code), error
    assert "Traceback" not in error["message"]
    assert await snapshot() == before
    # No attestation was made: the token is still refused, and still usable once attested.
    await refused(flow, token, "alice", "race-1")
    await attest(client, "race-1", "alice")
    assert (await awarded(flow, token, "alice", "race-1"))["newScore"] == 250
