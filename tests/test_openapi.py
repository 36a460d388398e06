"""The OpenAPI document covers every route, and the docs page is served locally."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from app.api.openapi import build_openapi
from app.api.routes import ENDPOINTS
from app.api.views import STATIC_DIR
from app.config import Config

from .conftest import envelope


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
