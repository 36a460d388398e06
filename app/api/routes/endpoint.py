"""What a route declares: its endpoint, with what it takes, answers and refuses, and the links between endpoints."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from aiohttp.typedefs import Handler

from ... import errors as e
from ...settings import Scope
from ..edge import LIMITED_PREFIX
from ..examples import Example


@dataclass(frozen=True, kw_only=True)
class Link:
    """How a success of one endpoint feeds another (an OpenAPI link, which clients and the
    fuzzer's stateful phase follow). Values are OpenAPI runtime expressions."""

    name: str
    target: Handler  # the endpoint it leads to; its handler's name is the operationId
    description: str
    parameters: Mapping[str, str] = field(default_factory=dict)  # the target's parameters
    body: Mapping[str, str] = field(default_factory=dict)  # fields of the target's request body


# Who may call an endpoint: anyone (None); a user, by a bearer JWT; an operator, by a bearer JWT
# whose `roles` claim holds auth.admin_role; a trusted server, by a service key.
Caller = Literal["user", "operator", "service"] | None


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    """One route: what it takes, what it answers, which contract errors it can give."""

    method: str
    path: str
    handler: Handler
    summary: str
    response: type | None = None  # the `data` model of a JSON success
    status: int = 200  # of a success
    accepted: type | None = None  # the `data` model of a 202 it may answer instead (a held award)
    accepted_links: tuple[Link, ...] = ()  # links of that 202
    media: str | None = "application/json"  # of a success; None: it has no body
    request: type | None = None
    request_optional: bool = False  # a request may come without the body (a DELETE's reason)
    form: type | None = None  # the `application/x-www-form-urlencoded` body of a browser's form
    query: type | None = None
    path_params: type | None = None
    headers: type | None = None  # request headers it requires, one field per header
    auth: Caller = None
    scope: Scope | None = None  # what a trusted server's key needs (auth "service")
    errors: tuple[type[e.ApiError], ...] = ()
    example: Example | None = None  # of the request body and the success
    links: tuple[Link, ...] = ()
    tag: str = "scoreboard"
    # "public": a success carries `ETag` and `Cache-Control: public, max-age=N` (shared caches and
    # CDNs may keep it) and `If-None-Match` naming the current tag answers 304; "private": a
    # success carries `Cache-Control: private, no-store`.
    cache: Literal["public", "private"] | None = None
    # A page of the operator page, for a person in a browser: its refusals are pages (text/html)
    # naming the contract's code, not the envelope.
    browser: bool = False

    def __post_init__(self) -> None:
        if (self.auth == "service") != (self.scope is not None):
            raise ValueError(f"{self.method} {self.path}: a scope names what a service key needs, and only that")

    def answers(self) -> tuple[type[e.ApiError], ...]:
        """Every error the endpoint can give: its own, and those of the layers in front of its
        handler, which answer before it runs."""
        before: list[type[e.ApiError]] = []
        if self.request is not None or self.form is not None:
            before.append(e.PayloadTooLarge)  # aiohttp refuses a body over server.max_body_bytes
        if self.path.startswith(LIMITED_PREFIX):
            # The per-IP limit of the edge, kept in Redis in the Redis modes (503 while it is down).
            before += [e.RateLimited, e.ServiceUnavailable]
        if not self.browser:  # (a page's refusals are pages; its 500 is the envelope all the same)
            before.append(e.ApiError)  # 500 INTERNAL_ERROR: a fault of the server's, never a stack trace
        return tuple(dict.fromkeys((*self.errors, *before)))


# The refusals every authenticated route shares (each adds its own).
AUTH_ERRORS: tuple[type[e.ApiError], ...] = (e.Unauthorized, e.ValidationFailed)
