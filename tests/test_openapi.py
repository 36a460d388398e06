"""The OpenAPI document covers every route, and the docs page is served locally."""

from __future__ import annotations

from typing import Any

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
