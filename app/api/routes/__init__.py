"""The route table: each endpoint declared once, in its area's module, for the router and the OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler

from .. import views
from ..edge import expect_continue
from . import awards, boards, live, operator_page, operators, privacy, site, trusted
from .endpoint import Endpoint

# In the order the OpenAPI document lists them (the event stream where it was first added, after the
# privacy routes).
ENDPOINTS: tuple[Endpoint, ...] = (
    live.PAGE,
    live.WEBSOCKET,
    *awards.ENDPOINTS,
    *boards.ENDPOINTS,
    *privacy.ENDPOINTS,
    live.STREAM,
    *trusted.ENDPOINTS,
    *operators.ENDPOINTS,
    *operator_page.ENDPOINTS,
    *site.ENDPOINTS,
)


UNMATCHED = "unmatched"  # the route label of every path no route serves (404, 405)


def setup_routes(
    app: web.Application, wrap: Callable[[Handler, str], Handler], endpoints: tuple[Endpoint, ...] = ENDPOINTS
) -> None:
    """Register every endpoint, each handler inside `wrap` (the request edge, told the route's
    template), and a last route that answers every other path and method with the contract's 404 or 405."""
    for endpoint in endpoints:
        handler = wrap(endpoint.handler, endpoint.path)
        if endpoint.method == "GET":
            app.router.add_get(endpoint.path, handler, expect_handler=expect_continue)  # HEAD too
        else:
            app.router.add_route(endpoint.method, endpoint.path, handler, expect_handler=expect_continue)
    # Every other path, newlines (%0A) too.
    app.router.add_route("*", r"/{unmatched:[\s\S]*}", wrap(views.unmatched, UNMATCHED), expect_handler=expect_continue)
