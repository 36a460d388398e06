"""The route table: each endpoint declared once, for the router and the OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler

from . import errors as e
from . import live, views
from . import models as m


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    """One route: what it takes, what it answers, which contract errors it can give."""

    method: str
    path: str
    handler: Handler
    summary: str
    response: type | None = None  # the `data` model of a JSON success
    media: str = "application/json"
    request: type | None = None
    query: type | None = None
    path_params: type | None = None
    auth: bool = False
    errors: tuple[type[e.ApiError], ...] = ()
    tag: str = "scoreboard"


_BASE_ERRORS: tuple[type[e.ApiError], ...] = (e.RateLimited,)
_AUTH_ERRORS: tuple[type[e.ApiError], ...] = (e.Unauthorized, e.ValidationFailed, e.RateLimited)

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        method="GET",
        path="/",
        handler=views.page,
        summary="The live top-10 page: rendered on the server, kept live over the WebSocket",
        media="text/html",
        tag="web",
    ),
    Endpoint(
        method="GET",
        path="/ws/scoreboard",
        handler=live.websocket,
        summary="WebSocket of live updates (optional `?token=<JWT>`); messages as in the contract",
        media="application/json",
        errors=(e.Forbidden, e.RateLimited, e.ServiceUnavailable),
        tag="web",
    ),
    Endpoint(
        method="GET",
        path="/api/v1/scoreboard/top",
        handler=views.top,
        summary="The top of the board (default 10, at most 100)",
        response=m.TopData,
        query=m.TopQuery,
        errors=(e.ValidationFailed, *_BASE_ERRORS),
    ),
    Endpoint(
        method="POST",
        path="/api/v1/actions/initialize",
        handler=views.initialize,
        summary="Start an action: get a one-time action token worth the catalog's score",
        response=m.InitializeData,
        request=m.InitializeRequest,
        auth=True,
        errors=(*_AUTH_ERRORS, e.Forbidden, e.InvalidAction, e.ActionAlreadyCompleted, e.ServiceUnavailable),
    ),
    Endpoint(
        method="POST",
        path="/api/v1/scoreboard/update",
        handler=views.update,
        summary="Complete an action: consume its token and award its score exactly once",
        response=m.UpdateData,
        request=m.UpdateRequest,
        auth=True,
        errors=(
            *_AUTH_ERRORS,
            e.InvalidToken,
            e.TokenExpired,
            e.Forbidden,
            e.TokenAlreadyUsed,
            e.ActionAlreadyCompleted,
            e.InvalidAction,
            e.ActionMismatch,
            e.ActionTooFast,
            e.ServiceUnavailable,
        ),
    ),
    Endpoint(
        method="GET",
        path="/api/v1/users/{userId}/score",
        handler=views.user_score,
        summary="A user's score, rank and percentile (rank null before the first award)",
        response=m.UserScoreData,
        path_params=m.UserPath,
        auth=True,
        errors=(*_AUTH_ERRORS, e.UserNotFound),
    ),
    Endpoint(
        method="GET", path="/healthz", handler=views.healthz, summary="Alive", response=m.HealthData, tag="operations"
    ),
    Endpoint(
        method="GET",
        path="/readyz",
        handler=views.readyz,
        summary="Ready: storage is reachable",
        response=m.HealthData,
        errors=(e.ServiceUnavailable,),
        tag="operations",
    ),
    Endpoint(
        method="GET",
        path="/api/openapi.json",
        handler=views.openapi,
        summary="This OpenAPI document",
        errors=_BASE_ERRORS,
        tag="documentation",
    ),
    Endpoint(
        method="GET",
        path="/api/docs",
        handler=views.docs,
        summary="Readable API documentation",
        media="text/html",
        errors=_BASE_ERRORS,
        tag="documentation",
    ),
    Endpoint(
        method="GET",
        path="/static/{filename}",
        handler=views.static_file,
        summary="Static assets of the web pages (JS, CSS)",
        media="*/*",
        errors=(e.NotFound,),
        tag="web",
    ),
)


def setup_routes(
    app: web.Application, wrap: Callable[[Handler], Handler], endpoints: tuple[Endpoint, ...] = ENDPOINTS
) -> None:
    """Register every endpoint, each handler inside `wrap` (the request edge), and a last route
    that answers every other path and method with the contract's 404 or 405."""
    for endpoint in endpoints:
        if endpoint.method == "GET":
            app.router.add_get(endpoint.path, wrap(endpoint.handler))  # HEAD too
        else:
            app.router.add_route(endpoint.method, endpoint.path, wrap(endpoint.handler))
    app.router.add_route("*", r"/{unmatched:[\s\S]*}", wrap(views.unmatched))  # newlines (%0A) too
