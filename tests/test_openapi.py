"""The OpenAPI document covers every route with examples and validates, and /api/docs is Swagger UI from local files."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator

from app import create_app
from app.api.edge import CSP
from app.api.openapi import build_openapi
from app.api.routes import ENDPOINTS
from app.api.views import STATIC_DIR, SWAGGER_UI_DIR
from app.auth import UserAuth
from app.config import Config

from .boards.scene import RACER_KEY, boards_config
from .conftest import JWT_SECRET, envelope, make_config


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


async def test_docs_page_is_swagger_ui_from_local_files(client: Any) -> None:
    resp = await client.get("/api/docs")
    html = await resp.text()
    assert resp.status == 200 and resp.content_type == "text/html"
    assert resp.headers["Content-Security-Policy"] == CSP
    assert 'data-openapi-url="/api/openapi.json"' in html and "https://" not in html and "http://" not in html
    assert "<script>" not in html  # files only: the policy allows no inline script
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    assert assets == [
        "/static/swagger-ui/swagger-ui.css",
        "/static/swagger-ui/swagger-ui-bundle.js",
        "/static/api-docs.js",
    ]
    for asset in assets:
        answer = await client.get(asset)
        assert answer.status == 200 and answer.headers["Cache-Control"] == "public, max-age=300"
    bundle = await (await client.get("/static/swagger-ui/swagger-ui-bundle.js")).text()
    assert "SwaggerUIBundle" in bundle


async def test_missing_static_file_is_enveloped(client: Any) -> None:
    for path in (
        "/static/nothing.js",
        "/static/..%2Fconfig.toml",
        "/static/%2E%2E%2Frun.py",
        "/static/swagger-ui/..%2F..%2Fswagger_ui%2Fcore.py",
        "/static/swagger-ui/oauth2-redirect.html",  # in the package's folder, not used by /api/docs
    ):
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
    """The error codes an error answer's schema allows (an operator page's refusal, a page for a
    person, names them in its description)."""
    if "text/html" in response["content"]:
        assert response["content"]["text/html"]["schema"] == {"type": "string"}
        described: str = response["description"]
        return described.removeprefix("Error codes: ").split(", ")
    envelope, narrowed = response["content"]["application/json"]["schema"]["allOf"]
    assert envelope == {"$ref": "#/components/schemas/ErrorEnvelope"}
    codes: list[str] = narrowed["properties"]["error"]["properties"]["code"]["enum"]
    return codes


def test_every_path_parameter_is_declared() -> None:
    for method, path, operation in _operations(DOC):
        declared = {p["name"]: p for p in operation.get("parameters", []) if p["in"] == "path"}
        assert set(declared) == set(re.findall(r"{(\w+)}", path)), (method, path)
        assert all(p["required"] for p in declared.values())
    for path, folder in (("/static/{filename}", STATIC_DIR), ("/static/swagger-ui/{filename}", SWAGGER_UI_DIR)):
        filename = DOC["paths"][path]["get"]["parameters"][0]
        for example in filename["schema"]["examples"]:
            assert (folder / example).is_file()


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
                # The operator page's refusals are pages for the person at the browser, naming the code.
                (media,) = response["content"]
                assert media == ("text/html" if path.startswith("/admin") else "application/json"), (method, path)
                if media == "text/html":
                    assert f"<code>{codes[0]}</code>" in response["content"][media]["example"]
    envelope = DOC["components"]["schemas"]["ErrorEnvelope"]
    assert envelope["properties"]["success"] == {"enum": [False]}
    assert set(envelope["required"]) == {"success", "error"}


def test_the_operator_pages_forms_are_documented_as_a_browser_sends_them() -> None:
    forms = {
        (method, path): operation
        for method, path, operation in _operations(DOC)
        if path.startswith("/admin") and method == "POST"
    }
    assert set(forms) == {
        ("POST", "/admin/session"),
        ("POST", "/admin/session/end"),
        ("POST", "/admin/held/{heldId}/approve"),
        ("POST", "/admin/held/{heldId}/reject"),
    }
    for where, operation in forms.items():
        assert operation["tags"] == ["operator page"] and "security" not in operation, where  # a cookie, not a bearer
        (media,) = operation["requestBody"]["content"]
        assert media == "application/x-www-form-urlencoded", where
        assert set(operation["responses"]["303"]) == {"description", "headers"}, where
        assert operation["responses"]["303"]["headers"]["Location"]["required"], where
        assert "PAYLOAD_TOO_LARGE" in _codes(operation["responses"]["413"]), where
    decision = _deref(
        DOC,
        forms[("POST", "/admin/held/{heldId}/approve")]["requestBody"]["content"]["application/x-www-form-urlencoded"][
            "schema"
        ],
    )
    assert set(decision["required"]) == {"csrf", "reason"}
    assert "ALREADY_DECIDED" in _codes(forms[("POST", "/admin/held/{heldId}/reject")]["responses"]["409"])
    for path in ("/admin", "/admin/users"):
        assert set(DOC["paths"][path]["get"]["responses"]["200"]["content"]) == {"text/html"}


def test_websocket_is_documented_as_an_upgrade() -> None:
    operation = DOC["paths"]["/ws/scoreboard"]["get"]
    assert set(operation["responses"]) == {"101", "400", "403", "429", "500", "503"}
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
                assert status in ("200", "202")
    assert followed == {
        ("initialize", "update"),
        ("update", "user_score"),
        ("update", "approve_held"),  # a held award's 202
        ("update", "reject_held"),
        ("board_scores", "remove_entry"),  # an operator corrects a written entry
        ("board_scores", "adjust"),
    }


SECURITY: dict[str | None, Any] = {
    None: None,
    "user": [{"bearer": []}],
    "operator": [{"bearer": ["admin"]}],  # OpenAPI 3.1: a bearer scheme's list names the roles needed
}
# A trusted server's operations name the scope its key needs.
SCOPES = {
    "POST /api/v1/boards/{board}/scores": "scores:write",
    "POST /api/v1/actions/{actionId}/attest": "actions:attest",
}


def test_each_route_names_who_may_call_it() -> None:
    schemes = DOC["components"]["securitySchemes"]
    assert {name: (s["type"], s["scheme"]) for name, s in schemes.items()} == {
        "bearer": ("http", "bearer"),
        "serviceKey": ("http", "bearer"),
    }
    assert (
        "SHA-256" in schemes["serviceKey"]["description"] and "[services.NAME]" in schemes["serviceKey"]["description"]
    )
    by_auth: dict[str | None, set[str]] = {}
    for endpoint in ENDPOINTS:
        by_auth.setdefault(endpoint.auth, set()).add(f"{endpoint.method} {endpoint.path}")
        operation = DOC["paths"][endpoint.path][endpoint.method.lower()]
        route = f"{endpoint.method} {endpoint.path}"
        expected = [{"serviceKey": [SCOPES[route]]}] if endpoint.auth == "service" else SECURITY[endpoint.auth]
        assert operation.get("security") == expected, (endpoint.method, endpoint.path)
        if endpoint.auth is not None:
            assert "UNAUTHORIZED" in _codes(operation["responses"]["401"])
        if endpoint.auth in ("operator", "service"):
            assert "FORBIDDEN" in _codes(operation["responses"]["403"])
    assert by_auth["service"] == set(SCOPES)
    assert by_auth["operator"] == {
        "POST /api/v1/admin/boards",
        "PATCH /api/v1/admin/boards/{board}",
        "DELETE /api/v1/admin/boards/{board}",
        "DELETE /api/v1/users/{userId}",  # the contract's erasure of another user
        "DELETE /api/v1/admin/users/{userId}",  # the same, where `me` is a user's id
        "GET /api/v1/admin/held",  # the contract's cheat quarantine
        "POST /api/v1/admin/held/{heldId}/approve",
        "POST /api/v1/admin/held/{heldId}/reject",
        "POST /api/v1/admin/users/{userId}/disqualify",  # the contract's moderation
        "POST /api/v1/admin/users/{userId}/reinstate",
        "POST /api/v1/admin/boards/{board}/scores/{userId}/adjust",
        "POST /api/v1/admin/boards/{board}/periods/{period}/entries/{userId}/remove",
        "POST /api/v1/admin/boards/{board}/periods/{period}/wipe",
        "GET /api/v1/admin/users/{userId}/history",
    }
    assert {"GET /api/v1/boards/{board}/top", "POST /api/v1/boards/{board}/lookup"} <= by_auth[None]
    assert "GET /api/v1/users/{userId}/boards" in by_auth["user"]


def test_operator_routes_name_the_role() -> None:
    for method, path, operation in _operations(DOC):
        if path.startswith("/api/v1/admin/"):
            assert "`roles` claim must hold `admin` (auth.admin_role)" in operation["description"], (method, path)
            assert "403 FORBIDDEN" in operation["description"]


def test_trusted_write_requires_an_idempotency_key() -> None:
    operation = DOC["paths"]["/api/v1/boards/{board}/scores"]["post"]
    (key,) = [p for p in operation["parameters"] if p["in"] == "header"]
    assert (key["name"], key["required"]) == ("Idempotency-Key", True)
    assert key["schema"] | {"examples": None} == {
        "type": "string",
        "minLength": 1,
        "maxLength": 100,
        "pattern": "^[!-~](?:[ -~]*[!-~])?(?!\\n)$",
        "examples": None,
    }
    assert "1-100 printable ASCII characters naming this write (spaces within; given once)" in key["description"]
    assert "within 24 h (limits.idempotency_hours)" in operation["description"]
    assert "IDEMPOTENCY_CONFLICT" in _codes(operation["responses"]["409"])
    assert "BOARD_NOT_FOUND" in _codes(operation["responses"]["404"])


def test_attestation_names_its_scope_and_what_it_unlocks() -> None:
    operation = DOC["paths"]["/api/v1/actions/{actionId}/attest"]["post"]
    assert operation["tags"] == ["trusted servers"]
    assert "whose `scopes` hold `actions:attest`; 403 FORBIDDEN otherwise" in operation["description"]
    assert "after 24 h (limits.idempotency_hours)" in operation["description"]
    (action_id,) = operation["parameters"]
    assert (action_id["name"], action_id["in"], action_id["schema"]["maxLength"]) == ("actionId", "path", 100)
    assert [_codes(operation["responses"][status]) for status in ("400", "401", "403")] == [
        ["VALIDATION_ERROR"],
        ["UNAUTHORIZED"],
        ["FORBIDDEN"],
    ]
    update = DOC["paths"]["/api/v1/scoreboard/update"]["post"]
    assert "NOT_ATTESTED" in _codes(update["responses"]["409"])


async def test_served_document_has_the_configured_role_and_retention(aiohttp_client: Any, tmp_path: Path) -> None:
    config = make_config(tmp_path / "db.sqlite", auth={"admin_role": "ops"}, limits={"idempotency_hours": 48})
    client = await aiohttp_client(create_app(config))
    doc = await (await client.get("/api/openapi.json")).json()
    create = doc["paths"]["/api/v1/admin/boards"]["post"]
    assert create["security"] == [{"bearer": ["ops"]}] and "must hold `ops`" in create["description"]
    assert "within 48 h" in doc["paths"]["/api/v1/boards/{board}/scores"]["post"]["description"]
    assert "after 48 h" in doc["paths"]["/api/v1/actions/{actionId}/attest"]["post"]["description"]


def _parameter(path: str, name: str, method: str = "get") -> dict[str, Any]:
    parameters: list[dict[str, Any]] = DOC["paths"][path][method]["parameters"]
    (found,) = [p for p in parameters if p["name"] == name]
    return found


def test_board_reads_agree_with_the_contract() -> None:
    """Defaults and ranges as docs/rest.md and docs/boards.md give them."""
    ranks, around = "/api/v1/boards/{board}/ranks", "/api/v1/boards/{board}/around/{userId}"
    assert _parameter(ranks, "from")["schema"] | {"maximum": None} == {
        "type": "integer",
        "minimum": 1,
        "default": 1,
        "maximum": None,
    }
    for path in (ranks, "/api/v1/boards/{board}/top"):
        assert _parameter(path, "limit")["schema"] == {"type": "integer", "minimum": 1, "maximum": 100, "default": 10}
    assert _parameter(around, "radius")["schema"] == {"type": "integer", "minimum": 0, "maximum": 25, "default": 5}
    for path in (ranks, around, "/api/v1/boards/{board}/top"):
        period = _parameter(path, "period")
        assert period["schema"]["default"] == "current" and not period["required"]
        for word in ("`current`", "`previous`", "YYYY-MM-DD", "YYYY-Www", "YYYY-MM", "YYYY-MM-DDTHH:MM", "`all`"):
            assert word in period["description"], word
        assert "description" not in period["schema"]  # said once, where readers look
    lookup = DOC["components"]["schemas"]["LookupRequest"]["properties"]["userIds"]
    assert (lookup["minItems"], lookup["maxItems"]) == (1, 100)
    write = DOC["components"]["schemas"]["ScoreWriteRequest"]
    assert set(write["required"]) == {"userId", "score"}
    assert write["properties"]["score"]["minimum"] == -(2**53) and write["properties"]["score"]["maximum"] == 2**53
    codes = {
        code
        for _, path, operation in _operations(DOC)
        if path.startswith("/api/v1/boards") or path.startswith("/api/v1/admin")
        for status, response in operation["responses"].items()
        if int(status) >= 400
        for code in _codes(response)
    }
    assert {"BOARD_NOT_FOUND", "PERIOD_NOT_FOUND", "IDEMPOTENCY_CONFLICT", "BOARD_EXISTS", "BOARD_IN_USE"} <= codes


def test_model_descriptions_are_one_paragraph() -> None:
    for name, schema in DOC["components"]["schemas"].items():
        assert "\n" not in schema.get("description", ""), name


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


async def test_a_schedule_refused_beyond_the_schema_names_its_field(aiohttp_client: Any, tmp_path: Path) -> None:
    client = await aiohttp_client(create_app(boards_config(tmp_path / "db.sqlite", {})))
    admin = {"Authorization": f"Bearer {UserAuth(JWT_SECRET).issue('op', roles=('admin',))}"}
    for field, value in (("reset", "0 0 30 2 *"), ("reset", "every tuesday"), ("timezone", "Mars/Olympus")):
        resp = await client.post("/api/v1/admin/boards", json={"id": "s1", field: value}, headers=admin)
        error = (await envelope(resp))["error"]
        assert (resp.status, error["code"], error["details"]) == (
            400,
            "VALIDATION_ERROR",
            {"board": "s1", "field": field},
        )
        assert (
            "Checked beyond this schema"
            in DOC["components"]["schemas"]["BoardCreate"]["properties"][field]["description"]
        )


@pytest.mark.parametrize(
    ("key", "status"),
    [
        (None, 400),
        ("", 400),
        ("k" * 101, 400),
        ("tab\tkey", 400),
        ("naïve", 400),
        ("race 7", 200),
        ("k" * 100, 200),
        ("!~race:7/lap#2", 200),
    ],
)
async def test_idempotency_key_is_read_as_the_document_declares(
    aiohttp_client: Any, tmp_path: Path, key: str | None, status: int
) -> None:
    client = await aiohttp_client(create_app(boards_config(tmp_path / "db.sqlite", {})))
    headers = {"Authorization": f"Bearer {RACER_KEY}"}
    if key is not None:
        headers["idempotency-key"] = key  # header names are case-insensitive
    resp = await client.post("/api/v1/boards/high/scores", json={"userId": "ann", "score": 5}, headers=headers)
    answer = await envelope(resp)
    assert resp.status == status, answer
    if status == 400:
        assert answer["error"]["code"] == "VALIDATION_ERROR" and "Idempotency-Key" in answer["error"]["details"]
    if key is None:  # a header, not a body's field
        assert answer["error"]["message"] == "The Idempotency-Key header is required", answer


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


async def test_an_integer_query_parameter_is_decimal_digits(aiohttp_client: Any, tmp_path: Path) -> None:
    """As the README says: `1e1`, `5.0`, `+5` are refused, whatever the parameter's description."""
    client = await aiohttp_client(create_app(boards_config(tmp_path / "db.sqlite", {})))
    checked = []
    for method, path, operation in _operations(DOC):
        integers = [
            p["name"]
            for p in operation.get("parameters", [])
            if p["in"] == "query" and p["schema"].get("type") == "integer"
        ]
        url = path.replace("{board}", "global").replace("{userId}", "ann")
        for name in integers:
            # Past the bearer check where the operation needs one (an operator's, which is checked
            # before the request is read): the parameter is what is refused.
            bearer = UserAuth(JWT_SECRET).issue("ann", roles=("admin",))
            headers = {"Authorization": f"Bearer {bearer}"} if "security" in operation else {}
            for bad in ("1e1", "5.0", "+5"):
                resp = await client.request(method, url, params={name: bad}, headers=headers)
                assert resp.status == 400, (path, name, bad)
                if path.startswith("/admin"):  # the operator page's refusal is a page naming the code
                    assert '<code id="code">VALIDATION_ERROR</code>' in await resp.text()
                else:
                    assert (await envelope(resp))["error"]["code"] == "VALIDATION_ERROR"
            checked.append((path, name))
    assert ("/api/v1/users/me/notifications", "after") in checked and ("/admin", "after") in checked
    assert ("/api/v1/boards/{board}/ranks", "from") in checked and (
        "/api/v1/boards/{board}/around/{userId}",
        "radius",
    ) in checked


def test_action_type_points_to_the_catalog() -> None:
    listed = DOC["paths"]["/api/v1/actions"]["get"]
    assert "security" not in listed  # public
    assert listed["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["data"] == {
        "$ref": "#/components/schemas/ActionsData"
    }
    for name in ("InitializeRequest",):
        assert "`GET /api/v1/actions`" in DOC["components"]["schemas"][name]["properties"]["actionType"]["description"]
    bare = build_openapi(ENDPOINTS, version="test")  # without a catalog: the pointer still
    assert (
        "`GET /api/v1/actions`"
        in bare["components"]["schemas"]["InitializeRequest"]["properties"]["actionType"]["description"]
    )


def test_the_document_is_valid_openapi_3_1() -> None:
    OpenAPIV31SpecValidator(DOC).validate()  # raises, naming the first problem


async def test_the_served_document_is_valid_openapi_3_1(client: Any) -> None:
    OpenAPIV31SpecValidator(await (await client.get("/api/openapi.json")).json()).validate()


def _validates(schema: dict[str, Any], value: Any, where: tuple[str, ...]) -> None:
    errors = list(jsonschema.Draft202012Validator({**schema, "components": DOC["components"]}).iter_errors(value))
    assert errors == [], (where, [error.message for error in errors])


def test_every_operation_has_examples_that_fit_its_schemas() -> None:
    for method, path, operation in _operations(DOC):
        where = (method, path)
        if "requestBody" in operation:
            ((media, body),) = operation["requestBody"]["content"].items()
            assert media in ("application/json", "application/x-www-form-urlencoded"), where
            _validates(body["schema"], body["example"], (*where, "request"))
        shown = 0
        for status, response in operation["responses"].items():
            for media, content in response.get("content", {}).items():
                schema = content["schema"]
                if "examples" in content:  # one per error code
                    assert int(status) >= 400 and set(content["examples"]) == set(_codes(response)), where
                    for code, example in content["examples"].items():
                        assert example["value"]["error"]["code"] == code
                        _validates(schema, example["value"], (*where, status, code))
                    shown += 1
                elif "example" in content:
                    if media == "application/json":
                        _validates(schema, content["example"], (*where, status))
                    else:
                        assert isinstance(content["example"], str) and content["example"], where
                    shown += 1
                else:
                    # Only answers no example can show: this document itself, an icon, a static file.
                    assert schema in ({"type": "object"}, {"type": "string", "format": "binary"}), (*where, status)
        assert shown or path == "/favicon.ico", where


def test_an_error_example_is_what_the_server_answers() -> None:
    examples = DOC["paths"]["/api/v1/scoreboard/update"]["post"]["responses"]["409"]["content"]["application/json"]
    assert examples["examples"]["TOKEN_ALREADY_USED"] == {
        "summary": "This action token has already been used",
        "value": {
            "success": False,
            "error": {"code": "TOKEN_ALREADY_USED", "message": "This action token has already been used"},
        },
    }


def test_summaries_are_plain_text() -> None:
    """Readers show a summary as it is (Markdown only in descriptions): no backticks shown as such."""
    for method, path, operation in _operations(DOC):
        assert "`" not in operation["summary"], (method, path)
    assert "?board=" in DOC["paths"]["/"]["get"]["summary"]


def test_update_documents_the_202_of_a_held_award() -> None:
    accepted = DOC["paths"]["/api/v1/scoreboard/update"]["post"]["responses"]["202"]["content"]["application/json"]
    data = _deref(DOC, accepted["schema"]["properties"]["data"])
    assert {"status", "id"} <= set(data["required"]) and data["properties"]["status"]["enum"] == ["held"]
    assert accepted["example"]["data"]["status"] == "held"


def test_every_json_operation_documents_the_internal_error() -> None:
    for path, item in DOC["paths"].items():
        for method, operation in item.items():
            page = any("text/html" in answer.get("content", {}) for answer in operation["responses"].values())
            assert page or _codes(operation["responses"]["500"]) == ["INTERNAL_ERROR"], (method, path)
