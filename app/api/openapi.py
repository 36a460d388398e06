"""The OpenAPI 3.1 document, generated from the route table and the models."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import msgspec

from ..errors import BEARER_CHALLENGE, ApiError
from ..settings import ACTIONS_ATTEST, SCORES_WRITE, AuthSettings, LimitSettings, Scope
from .envelope import ETAG_PATTERN, PRIVATE_CACHE_CONTROL, PUBLIC_CACHE_CONTROL_PATTERN, ErrorEnvelope
from .examples import Example
from .forms import FORM
from .routes.endpoint import Endpoint, Link

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
    for where, model in (("path", endpoint.path_params), ("query", endpoint.query), ("header", endpoint.headers)):
        if model is None:
            continue
        properties, required = _properties(model, components)
        for name, declared in properties.items():
            schema = dict(declared)  # a copy: the model's own schema is among the components too
            param = {"name": name, "in": where, "required": where == "path" or name in required, "schema": schema}
            if "description" in schema:  # readers show a parameter's description, not its schema's
                param["description"] = schema.pop("description")
            params.append(param)
    return params


def _error_responses(errors: tuple[type[ApiError], ...], *, browser: bool = False) -> dict[str, Any]:
    by_status: dict[int, list[str]] = {}
    for error in errors:
        by_status.setdefault(error.status, []).append(error.code)
    responses: dict[str, Any] = {}
    for status, codes in sorted(by_status.items()):
        if browser:
            # A page for the person at the browser, naming the code and saying what to do.
            page = {"schema": {"type": "string"}, "example": _error_page(errors, status)}
            responses[str(status)] = {"description": "Error codes: " + ", ".join(codes), "content": {"text/html": page}}
            if status == 401:
                responses[str(status)]["headers"] = {"WWW-Authenticate": _CHALLENGE}
            continue
        # The envelope, with `error.code` narrowed to the codes this operation gives with this status.
        schema = {
            "allOf": [
                {"$ref": _REF.format(name="ErrorEnvelope")},
                {"properties": {"error": {"properties": {"code": {"enum": codes}}}}},
            ]
        }
        responses[str(status)] = {
            "description": "Error codes: " + ", ".join(codes),
            "content": {"application/json": {"schema": schema, "examples": _error_examples(errors, status)}},
        }
        if status == 401:
            responses[str(status)]["headers"] = {"WWW-Authenticate": _CHALLENGE}
        if status == 429:
            responses[str(status)]["headers"] = {
                "Retry-After": {"description": "Whole seconds to wait", "schema": {"type": "integer", "minimum": 1}}
            }
    return responses


_CHALLENGE = {
    "description": f'`{BEARER_CHALLENGE}`, with `error="invalid_token"` when the credential sent fails '
    "(RFC 6750); without `error` when none was sent",
    "required": True,
    "schema": {"type": "string", "pattern": "^" + BEARER_CHALLENGE + '(, error="[a-z_]+")?$'},  # no metacharacter
}


def _error_page(errors: tuple[type[ApiError], ...], status: int) -> str:
    """An example of the operator page's refusal with this status: its first code, said as a page."""
    error = next(e for e in errors if e.status == status)
    return f'<!DOCTYPE html>\n<html lang="en">… <h1>{error.message}</h1> … <code>{error.code}</code> …</html>\n'


def _error_examples(errors: tuple[type[ApiError], ...], status: int) -> dict[str, Any]:
    """An example envelope of each code answered with this status, named by its code."""
    return {
        error.code: {
            "summary": error.message,
            "value": {"success": False, "error": {"code": error.code, "message": error.message}},
        }
        for error in errors
        if error.status == status
    }


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
            if endpoint.media == "application/json":
                schema: dict[str, Any] = {"type": "object"}
            elif endpoint.media.startswith("text/"):
                schema = {"type": "string"}
            else:
                schema = {"type": "string", "format": "binary"}
        else:
            schema = {
                "type": "object",
                "properties": {"success": {"const": True}, "data": _ref(endpoint.response, components)},
                "required": ["success", "data"],
            }
        answer["content"] = {endpoint.media: {"schema": schema, **_success_example(endpoint.example)}}
    if endpoint.links:
        answer["links"] = {link.name: _link(link) for link in endpoint.links}
    if endpoint.status == HTTPStatus.SEE_OTHER:
        answer["headers"] = {"Location": _BACK}
    return answer


_BACK = {
    "description": "The page to show next, which says in one line what the form did",
    "required": True,
    "schema": {"type": "string", "examples": ["/admin?done=approved&id=7"]},
}


def _accepted(endpoint: Endpoint, components: dict[str, Any]) -> dict[str, Any]:
    """The 202 an operation may answer instead of its success, with `data` of its own model."""
    assert endpoint.accepted is not None
    schema = {
        "type": "object",
        "properties": {"success": {"const": True}, "data": _ref(endpoint.accepted, components)},
        "required": ["success", "data"],
    }
    example = endpoint.example.accepted if endpoint.example is not None else None
    content: dict[str, Any] = {"schema": schema}
    if example is not None:
        content["example"] = {"success": True, "data": _as_json(example)}
    answer: dict[str, Any] = {"description": HTTPStatus.ACCEPTED.phrase, "content": {"application/json": content}}
    if endpoint.accepted_links:
        answer["links"] = {link.name: _link(link) for link in endpoint.accepted_links}
    return answer


def _as_json(model: object) -> Any:
    """A model as its JSON reads back (`msgspec.to_builtins` leaves raw JSON, such as metadata, out)."""
    return msgspec.json.decode(msgspec.json.encode(model))


def _success_example(example: Example | None) -> dict[str, Any]:
    """The `example` of a success's media type: the envelope around `data`, or the text of an answer
    that is not JSON."""
    if example is None:
        return {}
    if example.data is not None:
        return {"example": {"success": True, "data": _as_json(example.data)}}
    if example.text is not None:
        return {"example": example.text}
    return {}


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


@dataclass(frozen=True, kw_only=True)
class _Facts:
    """What the running server's configuration adds to the document."""

    actions: Sequence[str]
    admin_role: str
    idempotency_hours: int


# What each scope's operations add to the note on who may call them.
_SCOPE_NOTES: dict[Scope, str] = {
    SCORES_WRITE: " and whose `boards`, when listed, hold this board; 403 FORBIDDEN otherwise. The "
    "`Idempotency-Key` header is required (missing or malformed: 400 VALIDATION_ERROR); a retry with the "
    "same key and body within {hours} h (limits.idempotency_hours) answers the first answer again and changes "
    "nothing, the same key with another body is 409 IDEMPOTENCY_CONFLICT.",
    ACTIONS_ATTEST: "; 403 FORBIDDEN otherwise. An update of an action marked `attest` in the catalog "
    "(GET /api/v1/actions) is refused with 409 NOT_ATTESTED, its token staying usable, until its user's "
    "action is attested here; the award spends the attestation. One no award spent is forgotten after "
    "{hours} h (limits.idempotency_hours).",
}


def _security(endpoint: Endpoint, facts: _Facts) -> tuple[list[dict[str, list[str]]], str]:
    """The operation's security requirement (OpenAPI 3.1 lets a bearer scheme's list name the roles
    it needs) and what the description says about it."""
    if endpoint.auth == "user":
        return [{"bearer": []}], ""
    if endpoint.auth == "operator":
        return [{"bearer": [facts.admin_role]}], (
            f"Operators only: the bearer JWT's `roles` claim must hold `{facts.admin_role}` (auth.admin_role); "
            "403 FORBIDDEN otherwise. Each change is logged with the operator's user id."
        )
    if endpoint.auth == "service" and endpoint.scope is not None:
        note = (
            "Trusted servers only: `Authorization: Bearer <service key>` of a [services.NAME] whose `scopes` hold "
            f"`{endpoint.scope}`"
        )
        return [{"serviceKey": [endpoint.scope]}], note + _SCOPE_NOTES[endpoint.scope].format(
            hours=facts.idempotency_hours
        )
    return [], ""


def _operation(endpoint: Endpoint, components: dict[str, Any], facts: _Facts) -> dict[str, Any]:
    responses = {str(endpoint.status): _success(endpoint, components)}
    if endpoint.accepted is not None:
        responses["202"] = _accepted(endpoint, components)
    parameters = _parameters(endpoint, components)
    if endpoint.cache == "public":
        responses["304"] = _NOT_MODIFIED
        parameters.append(_IF_NONE_MATCH)
    operation: dict[str, Any] = {
        "summary": endpoint.summary.replace("`", ""),  # plain text to readers: only descriptions are Markdown
        "operationId": endpoint.handler.__name__,
        "tags": [endpoint.tag],
        "responses": {**responses, **_error_responses(endpoint.answers(), browser=endpoint.browser)},
    }
    if parameters:
        operation["parameters"] = parameters
    if endpoint.request is not None:
        body: dict[str, Any] = {"schema": _ref(endpoint.request, components)}
        if endpoint.example is not None and endpoint.example.request is not None:
            # Optional fields left out, as a client would.
            body["example"] = {k: v for k, v in _as_json(endpoint.example.request).items() if v is not None}
        operation["requestBody"] = {"required": not endpoint.request_optional, "content": {"application/json": body}}
    if endpoint.form is not None:
        form: dict[str, Any] = {"schema": _ref(endpoint.form, components)}
        if endpoint.example is not None and endpoint.example.request is not None:
            form["example"] = _as_json(endpoint.example.request)
        operation["requestBody"] = {"required": True, "content": {FORM: form}}
    security, note = _security(endpoint, facts)
    if security:
        operation["security"] = security
    if note:
        operation["description"] = note
    return operation


def _catalog(components: dict[str, Any], requests: set[str], actions: Sequence[str]) -> None:
    """`actionType` in a request is one of the configured actions: a model cannot know them, the
    running server does (any other name is refused with 400 INVALID_ACTION), and lists them. An
    answer's (an export's history) may name an action the catalog no longer has."""
    for name, schema in components.items():
        action_type = schema.get("properties", {}).get("actionType") if name in requests else None
        if action_type is None:
            continue
        action_type["description"] = (
            "An action of this server's catalog: `GET /api/v1/actions` lists every type with the score it "
            "awards, its minimum time, the boards it awards on and whether a trusted server must attest it"
        )
        if actions:
            action_type["enum"] = sorted(actions)
            action_type["examples"] = sorted(actions)[:1]


_SECURITY_SCHEMES = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A user's JWT from the identity system: HS256 with the shared secret, or RS256, ES256 or "
        "EdDSA with a key of the identity provider's JWKS (auth.jwks_url, auth.algorithms); `sub` the user id, "
        "`exp` required, `name` the display name. Operator routes also need auth.admin_role among its `roles` claim.",
    },
    "serviceKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "A trusted server's service key, configured as its SHA-256 (hex) in `key_sha256` under "
        "[services.NAME], with its `scopes` and optionally the `boards` it may write to.",
    },
}


def build_openapi(
    endpoints: tuple[Endpoint, ...],
    *,
    version: str,
    actions: Sequence[str] = (),
    admin_role: str = AuthSettings().admin_role,
    idempotency_hours: int = LimitSettings().idempotency_hours,
) -> dict[str, Any]:
    """The whole document for the given endpoints, action catalog, operators' role and retention of
    idempotency keys."""
    facts = _Facts(actions=actions, admin_role=admin_role, idempotency_hours=idempotency_hours)
    components: dict[str, Any] = {}
    _ref(ErrorEnvelope, components)
    paths: dict[str, Any] = {}
    for endpoint in endpoints:
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = _operation(endpoint, components, facts)
    _catalog(components, {e.request.__name__ for e in endpoints if e.request is not None}, actions)
    for schema in components.values():
        if "description" in schema:  # a docstring's line breaks and indentation
            schema["description"] = " ".join(schema["description"].split())
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Scoreboard",
            "version": version,
            "description": "Real-time leaderboards: the server decides what each action is worth and awards it "
            "exactly once, on the boards the action names; trusted servers write scores with a service key. "
            "The routes without a board mean the default board. Every response is an envelope: "
            '`{"success": true, "data": ...}` or `{"success": false, "error": {code, message, details}}`, '
            "also for an unknown path (404 NOT_FOUND), a method a path does not have (405 METHOD_NOT_ALLOWED, "
            "with `Allow`) and a fault of the server's (500 INTERNAL_ERROR, no stack trace).",
        },
        "paths": paths,
        "components": {"schemas": dict(sorted(components.items())), "securitySchemes": _SECURITY_SCHEMES},
    }


def encode_openapi(
    endpoints: tuple[Endpoint, ...],
    *,
    version: str,
    actions: Sequence[str] = (),
    admin_role: str = AuthSettings().admin_role,
    idempotency_hours: int = LimitSettings().idempotency_hours,
) -> bytes:
    """The document as JSON bytes, built once at start."""
    doc = build_openapi(
        endpoints, version=version, actions=actions, admin_role=admin_role, idempotency_hours=idempotency_hours
    )
    return msgspec.json.encode(doc)
