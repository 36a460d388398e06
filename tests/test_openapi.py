"""The OpenAPI document covers every route, and the docs page is served locally."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema

from app import create_app
from app.api.openapi import build_openapi
from app.api.routes import ENDPOINTS
from app.api.views import STATIC_DIR
from app.auth import UserAuth
from app.config import Config

from .boards.scene import RACER_KEY, boards_config
from .conftest import JWT_SECRET, envelope


async def test_every_route_is_documented(client: Any) -> None:
    resp = await client.get("/api/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    assert doc["openapi"].startswith("3.1")
    routes = {
        (route.method.lower(), route.resource.canonical)
        for route in client.app.router.routes()
        if route.method not in ("HEAD", "*") and route.resource is not None  # "*": the 404/405 catch-all
    }
    documented = {(method, path) for path, ops in doc["paths"].items() for method in ops}
    assert routes and routes <= documented
    # Every $ref resolves.
    schemas = doc["components"]["schemas"]
    text = str(doc)
    for name in {part.split("'")[0] for part in text.split("#/components/schemas/")[1:]}:
        assert name in schemas


async def test_error_codes_and_security_documented(client: Any) -> None:
    doc = await (await client.get("/api/openapi.json")).json()
    update = doc["paths"]["/api/v1/scoreboard/update"]["post"]
    assert update["security"] == [{"bearer": []}]
    described = " ".join(r["description"] for r in update["responses"].values())
    for code in ("INVALID_TOKEN", "TOKEN_EXPIRED", "TOKEN_ALREADY_USED", "ACTION_MISMATCH", "RATE_LIMITED"):
        assert code in described
    assert update["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/UpdateRequest"
    }
    request = doc["components"]["schemas"]["UpdateRequest"]
    assert set(request["required"]) == {"actionToken", "actionId"}
    assert request["properties"]["actionId"]["maxLength"] == 100


async def test_docs_page_local_assets(client: Any) -> None:
    resp = await client.get("/api/docs")
    html = await resp.text()
    assert resp.status == 200 and resp.content_type == "text/html"
    assert "/api/openapi.json" in html and "https://" not in html and "http://" not in html
    for asset in ("/static/docs.js", "/static/docs.css"):
        assert asset in html
        assert (await client.get(asset)).status == 200


async def test_missing_static_file_is_enveloped(client: Any) -> None:
    for path in ("/static/nothing.js", "/static/..%2Fconfig.toml", "/static/%2E%2E%2Frun.py"):
        resp = await client.get(path)
        assert resp.status == 404 and (await envelope(resp))["error"]["code"] == "NOT_FOUND"


DOC = build_openapi(ENDPOINTS, version="test", actions=("DEFEAT_BOSS", "COMPLETE_QUEST"))


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, ops in doc["paths"].items():
        for method, operation in ops.items():
            yield method.upper(), path, operation


def _deref(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _codes(response: dict[str, Any]) -> list[str]:
    """The error codes an error answer's schema allows."""
    envelope, narrowed = response["content"]["application/json"]["schema"]["allOf"]
    assert envelope == {"$ref": "#/components/schemas/ErrorEnvelope"}
    codes: list[str] = narrowed["properties"]["error"]["properties"]["code"]["enum"]
    return codes


def test_every_path_parameter_is_declared() -> None:
    for method, path, operation in _operations(DOC):
        declared = {p["name"]: p for p in operation.get("parameters", []) if p["in"] == "path"}
        assert set(declared) == set(re.findall(r"{(\w+)}", path)), (method, path)
        assert all(p["required"] for p in declared.values())
    filename = DOC["paths"]["/static/{filename}"]["get"]["parameters"][0]
    for example in filename["schema"]["examples"]:
        assert (STATIC_DIR / example).is_file()


def test_answers_of_the_layers_before_a_handler_are_documented() -> None:
    for method, path, operation in _operations(DOC):
        responses = operation["responses"]
        # aiohttp refuses a body over server.max_body_bytes before the handler reads it.
        assert ("413" in responses) == ("requestBody" in operation), (method, path)
        if "413" in responses:
            assert _codes(responses["413"]) == ["PAYLOAD_TOO_LARGE"]
        # The per-IP limit answers every request under /api/ before authentication, and the
        # WebSocket's admission every handshake before the upgrade; in the Redis modes they are
        # kept in Redis, and answer 503 while Redis is down.
        limited = path.startswith("/api/") or path == "/ws/scoreboard"
        assert ("429" in responses) == limited, (method, path)
        if limited:
            assert "RATE_LIMITED" in _codes(responses["429"])
            assert responses["429"]["headers"]["Retry-After"]["schema"] == {"type": "integer", "minimum": 1}
            assert "SERVICE_UNAVAILABLE" in _codes(responses["503"])


def test_every_error_answer_is_the_envelope_with_its_codes() -> None:
    for method, path, operation in _operations(DOC):
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                codes = _codes(response)
                assert codes and len(codes) == len(set(codes)), (method, path, status)
                assert response["description"] == "Error codes: " + ", ".join(codes)
    envelope = DOC["components"]["schemas"]["ErrorEnvelope"]
    assert envelope["properties"]["success"] == {"enum": [False]}
    assert set(envelope["required"]) == {"success", "error"}


def test_websocket_is_documented_as_an_upgrade() -> None:
    operation = DOC["paths"]["/ws/scoreboard"]["get"]
    assert set(operation["responses"]) == {"101", "400", "403", "429", "503"}
    assert "content" not in operation["responses"]["101"]  # the handshake's answer has no body
    assert _codes(operation["responses"]["400"]) == ["VALIDATION_ERROR"]  # not a handshake
    assert _codes(operation["responses"]["429"]) == ["RATE_LIMITED"]  # per-address connections, handshakes
    assert _codes(operation["responses"]["503"]) == ["SERVICE_UNAVAILABLE"]  # the process is full
    (token,) = operation["parameters"]
    assert (token["name"], token["in"], token["required"]) == ("token", "query", False)


def test_action_type_is_one_of_the_catalog() -> None:
    action_type = DOC["components"]["schemas"]["InitializeRequest"]["properties"]["actionType"]
    assert action_type["enum"] == ["COMPLETE_QUEST", "DEFEAT_BOSS"]
    assert action_type["examples"] == ["COMPLETE_QUEST"]


async def test_served_document_has_the_configured_catalog(client: Any, config: Config) -> None:
    doc = await (await client.get("/api/openapi.json")).json()
    assert doc["components"]["schemas"]["InitializeRequest"]["properties"]["actionType"]["enum"] == sorted(
        config.actions
    )


def test_links_lead_from_what_a_success_holds_to_what_the_target_takes() -> None:
    by_id = {operation["operationId"]: operation for _, _, operation in _operations(DOC)}
    followed = set()
    for _, _, source in _operations(DOC):
        for status, response in source["responses"].items():
            for link in response.get("links", {}).values():
                target = by_id[link["operationId"]]
                followed.add((source["operationId"], link["operationId"]))
                parameters = {p["name"] for p in target.get("parameters", [])}
                assert set(link.get("parameters", {})) <= parameters
                body = link.get("requestBody", {})
                if body:
                    request = _deref(DOC, target["requestBody"]["content"]["application/json"]["schema"])
                    assert set(body) <= set(request["properties"])
                for expression in [*link.get("parameters", {}).values(), *body.values()]:
                    where, _, pointer = expression.partition("#/")
                    schema = {
                        "$response.body": response["content"]["application/json"]["schema"],
                        "$request.body": source["requestBody"]["content"]["application/json"]["schema"],
                    }[where]
                    for name in pointer.split("/"):  # every step of the pointer is declared
                        schema = _deref(DOC, _deref(DOC, schema)["properties"][name])
                assert status == "200"
    assert followed == {("initialize", "update"), ("update", "user_score")}


# The server takes what the document calls valid and refuses the rest, as the fuzzer checks
# (tests/test_fuzz.py); these are the cases it found.


async def test_a_whole_number_with_a_fraction_is_an_integer(aiohttp_client: Any, tmp_path: Path) -> None:
    """JSON Schema counts 410.0 as an integer, so the document's `integer` fields take it."""
    client = await aiohttp_client(create_app(boards_config(tmp_path / "db.sqlite", {})))
    admin = {"Authorization": f"Bearer {UserAuth(JWT_SECRET).issue('op', roles=('admin',))}"}
    resp = await client.post("/api/v1/admin/boards", json={"id": "s1", "keepPeriods": 410.0}, headers=admin)
    assert resp.status == 201 and (await envelope(resp))["data"]["keepPeriods"] == 410
    write = {"Authorization": f"Bearer {RACER_KEY}", "Idempotency-Key": "k1"}
    resp = await client.post("/api/v1/boards/high/scores", data='{"userId": "ann", "score": 5e1}', headers=write)
    assert resp.status == 200 and (await envelope(resp))["data"]["newScore"] == 50
    for bad in ({"id": "s2", "keepPeriods": 4.5}, {"id": "s2", "keepPeriods": "4"}, {"id": "s2", "keepPeriods": 1e300}):
        resp = await client.post("/api/v1/admin/boards", json=bad, headers=admin)
        assert resp.status == 400 and (await envelope(resp))["error"]["code"] == "VALIDATION_ERROR", bad
    assert (await client.get("/api/v1/boards/s2")).status == 404


def _answers_as_documented(doc: dict[str, Any], method: str, path: str, status: int, body: Any) -> None:
    """Validate an answer against the document's schema of that operation and status."""
    schema = doc["paths"][path][method.lower()]["responses"][str(status)]["content"]["application/json"]["schema"]
    jsonschema.Draft202012Validator({**schema, "components": doc["components"]}).validate(body)


async def test_a_score_below_zero_is_documented(aiohttp_client: Any, tmp_path: Path) -> None:
    """A trusted write may subtract on an incr board, the default one too: the document promises no
    score of 0 or more anywhere a board's value is shown."""
    client = await aiohttp_client(create_app(boards_config(tmp_path / "db.sqlite", {})))
    doc = await (await client.get("/api/openapi.json")).json()
    write = {"Authorization": f"Bearer {RACER_KEY}", "Idempotency-Key": "penalty-1"}
    resp = await client.post("/api/v1/boards/global/scores", json={"userId": "ann", "score": -500}, headers=write)
    assert resp.status == 200 and (await resp.json())["data"]["newScore"] == -500
    bearer = {"Authorization": f"Bearer {UserAuth(JWT_SECRET).issue('ann')}"}
    resp = await client.post(
        "/api/v1/actions/initialize", json={"actionType": "DEFEAT_BOSS", "actionId": "b1"}, headers=bearer
    )
    token = (await resp.json())["data"]["actionToken"]
    resp = await client.post("/api/v1/scoreboard/update", json={"actionToken": token, "actionId": "b1"}, headers=bearer)
    award = await resp.json()
    assert award["data"]["previousScore"] == -500 and award["data"]["newScore"] == 0
    _answers_as_documented(doc, "POST", "/api/v1/scoreboard/update", 200, award)
    await client.post(
        "/api/v1/boards/global/scores",
        json={"userId": "bob", "score": -7},
        headers={**write, "Idempotency-Key": "penalty-2"},
    )
    for path, documented in (
        ("/api/v1/scoreboard/top", "/api/v1/scoreboard/top"),
        ("/api/v1/users/bob/score", "/api/v1/users/{userId}/score"),
        ("/api/v1/users/bob/boards", "/api/v1/users/{userId}/boards"),
        ("/api/v1/boards/global/top", "/api/v1/boards/{board}/top"),
    ):
        resp = await client.get(path, headers=bearer)
        body = await resp.json()
        assert resp.status == 200 and "-7" in json.dumps(body), body
        _answers_as_documented(doc, "GET", documented, 200, body)
