"""The site's own routes: health checks, this API's documentation, static files and the favicon."""

from __future__ import annotations

from ... import errors as e
from ...metrics.export import CONTENT_TYPE
from ...metrics.listener import PATH, metrics
from .. import examples as x
from .. import views
from ..site_data import HealthData, StaticPath, SwaggerUiPath
from .endpoint import Endpoint

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        method="GET",
        path="/healthz",
        handler=views.healthz,
        summary="Alive",
        response=HealthData,
        example=x.HEALTHY,
        tag="operations",
    ),
    Endpoint(
        method="GET",
        path="/readyz",
        handler=views.readyz,
        example=x.READY,
        summary="Ready: storage is reachable",
        response=HealthData,
        errors=(e.ServiceUnavailable,),
        tag="operations",
    ),
    Endpoint(
        method="GET",
        path="/api/openapi.json",
        handler=views.openapi,
        summary="This OpenAPI document",
        tag="documentation",
    ),
    Endpoint(
        method="GET",
        path="/api/docs",
        handler=views.docs,
        example=x.DOCS,
        summary='This document in Swagger UI, with examples and "Try it out" against this server',
        media="text/html",
        tag="documentation",
    ),
    Endpoint(
        method="GET",
        path="/favicon.ico",
        handler=views.favicon,
        summary="The site's icon, which browsers ask for by themselves",
        media="image/vnd.microsoft.icon",
        tag="web",
    ),
    Endpoint(
        method="GET",
        path="/static/{filename}",
        handler=views.static_file,
        summary="Static assets of the web pages (JS, CSS)",
        media="*/*",
        path_params=StaticPath,
        errors=(e.NotFound,),
        tag="web",
    ),
    Endpoint(
        method="GET",
        path="/static/swagger-ui/{filename}",
        handler=views.swagger_ui_file,
        summary="Swagger UI's files, for /api/docs (from the swagger-ui-py package, never a CDN)",
        media="*/*",
        path_params=SwaggerUiPath,
        errors=(e.NotFound,),
        tag="documentation",
    ),
)

# Served on the main port only when `metrics.on_main_port` says so (else on a listener of its own,
# which this document does not describe): listed in the document only then.
METRICS = Endpoint(
    method="GET",
    path=PATH,
    handler=metrics,
    summary="Prometheus metrics, in its text format (here when metrics.on_main_port is true)",
    media=CONTENT_TYPE,
    example=x.METRICS,
    tag="operations",
)
