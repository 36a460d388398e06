"""The OpenAPI 3.1 document, generated from the route table and the models."""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

import msgspec

from ..errors import ApiError
from .envelope import ETAG_PATTERN, PRIVATE_CACHE_CONTROL, PUBLIC_CACHE_CONTROL_PATTERN
from .models import ErrorEnvelope
from .routes import Endpoint, Link

_REF = "#/components/schemas/{name}"


def _properties(model: type, components: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    (schema,), defs = msgspec.json.schema_components([model], ref_template=_REF)
    components.update(defs)
    name = schema["$ref"].rsplit("/", 1)[-1]
    body = defs[name]
    return body.get("properties", {}), body.get("required", [])


def _ref(model: type, components: dict[str, Any]) -> dict[str, Any]:
    (schema,), defs = msgspec.json.schema_components([model], ref_template=_REF)
    components.update(defs)
    return dict(schema)


def _parameters(endpoint: Endpoint, components: dict[str, Any]) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = []
    for where, model in (("path", endpoint.path_params), ("query", endpoint.query)):
        if model is None:
            continue
        properties, required = _properties(model, components)
        for name, schema in properties.items():
            params.append(
                {"name": name, "in": where, "required": where == "path" or name in required, "schema": schema}
            )
    return params


def _error_responses(errors: tuple[type[ApiError], ...]) -> dict[str, Any]:
    by_status: dict[int, list[str]] = {}
    for error in errors:
        by_status.setdefault(error.status, []).append(error.code)
    responses: dict[str, Any] = {}
    for status, codes in sorted(by_status.items()):
        # The envelope, with `error.code` narrowed to the codes this operation gives with this status.
        schema = {
            "allOf": [
                {"$ref": _REF.format(name="ErrorEnvelope")},
                {"properties": {"error": {"properties": {"code": {"enum": codes}}}}},
            ]
        }
        responses[str(status)] = {
            "description": "Error codes: " + ", ".join(codes),
            "content": {"application/json": {"schema": schema}},
        }
        if status == 429:
            responses[str(status)]["headers"] = {
                "Retry-After": {"description": "Whole seconds to wait", "schema": {"type": "integer", "minimum": 1}}
            }
    return responses


_ETAG = {
    "description": "Strong entity tag of this exact body: it changes whenever the body does",
    "required": True,
    "schema": {"type": "string", "pattern": ETAG_PATTERN},
}
_PUBLIC_CACHE_CONTROL = {
    "description": "`public, max-age=N` (N = server.read_cache_seconds): browsers and shared caches (a CDN) "
    "may reuse the answer that long, then revalidate with `If-None-Match`; `no-cache` when N is 0",
    "required": True,
    "schema": {"type": "string", "pattern": PUBLIC_CACHE_CONTROL_PATTERN},
}
_IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": "The `ETag` of a copy the client holds (or `*`): 304 without a body while it is current",
    "schema": {"type": "string"},
}


def _cache_headers(endpoint: Endpoint) -> dict[str, Any]:
    """The caching headers of a success."""
    if endpoint.cache == "public":
        return {"ETag": _ETAG, "Cache-Control": _PUBLIC_CACHE_CONTROL}
    if endpoint.cache == "private":
        return {
            "Cache-Control": {
                "description": "A user's own view: kept by no cache",
                "required": True,
                "schema": {"const": PRIVATE_CACHE_CONTROL},
            }
        }
    return {}


_NOT_MODIFIED = {
    "description": "Not Modified: the copy named by `If-None-Match` is current; no body",
    "headers": {"ETag": _ETAG, "Cache-Control": _PUBLIC_CACHE_CONTROL},
}


def _success(endpoint: Endpoint, components: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": HTTPStatus(endpoint.status).phrase}
    if headers := _cache_headers(endpoint):
        answer["headers"] = headers
    if endpoint.media is not None:
        if endpoint.response is None:
            json = endpoint.media == "application/json"
            schema: dict[str, Any] = {"type": "object"} if json else {"type": "string", "format": "binary"}
        else:
            schema = {
                "type": "object",
                "properties": {"success": {"const": True}, "data": _ref(endpoint.response, components)},
                "required": ["success", "data"],
            }
        answer["content"] = {endpoint.media: {"schema": schema}}
    if endpoint.links:
        answer["links"] = {link.name: _link(link) for link in endpoint.links}
    return answer


def _link(link: Link) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": link.target.__name__, "description": link.description}
    if link.parameters:
        out["parameters"] = dict(link.parameters)
    if link.body:
        out["requestBody"] = dict(link.body)
        # The link's body is the whole body, as OpenAPI defines it; schemathesis would otherwise
        # mix its fields into a generated body (a token with another action's id: 400).
        out["x-schemathesis"] = {"merge_body": False}
    return out


def _operation(endpoint: Endpoint, components: dict[str, Any]) -> dict[str, Any]:
    responses = {str(endpoint.status): _success(endpoint, components)}
    parameters = _parameters(endpoint, components)
    if endpoint.cache == "public":
        responses["304"] = _NOT_MODIFIED
        parameters.append(_IF_NONE_MATCH)
    operation: dict[str, Any] = {
        "summary": endpoint.summary,
        "operationId": endpoint.handler.__name__,
        "tags": [endpoint.tag],
        "responses": {**responses, **_error_responses(endpoint.answers())},
    }
    if parameters:
        operation["parameters"] = parameters
    if endpoint.request is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(endpoint.request, components)}},
        }
    if endpoint.auth:
        operation["security"] = [{"bearer": []}]
    return operation


def _catalog(components: dict[str, Any], actions: Sequence[str]) -> None:
    """`actionType` is one of the configured actions: a model cannot know them, the running
    server does (any other name is refused with 400 INVALID_ACTION)."""
    for schema in components.values():
        action_type = schema.get("properties", {}).get("actionType")
        if action_type is not None and actions:
            action_type["description"] = "An action of this server's catalog"
            action_type["enum"] = sorted(actions)
            action_type["examples"] = sorted(actions)[:1]


def build_openapi(endpoints: tuple[Endpoint, ...], *, version: str, actions: Sequence[str] = ()) -> dict[str, Any]:
    """The whole document for the given endpoints and action catalog."""
    components: dict[str, Any] = {}
    _ref(ErrorEnvelope, components)
    paths: dict[str, Any] = {}
    for endpoint in endpoints:
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = _operation(endpoint, components)
    _catalog(components, actions)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Scoreboard",
            "version": version,
            "description": "Real-time leaderboard: the server decides what each action is worth and awards it "
            "exactly once. Every response is an envelope: "
            '`{"success": true, "data": ...}` or `{"success": false, "error": {code, message, details}}`.',
        },
        "paths": paths,
        "components": {
            "schemas": dict(sorted(components.items())),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }


def encode_openapi(endpoints: tuple[Endpoint, ...], *, version: str, actions: Sequence[str] = ()) -> bytes:
    """The document as JSON bytes, built once at start."""
    return msgspec.json.encode(build_openapi(endpoints, version=version, actions=actions))
