"""The shapes of the site's own routes: health checks and the static files."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from .fields import _Model


class HealthData(_Model):
    status: str


class StaticPath(_Model):
    filename: Annotated[str, Meta(min_length=1, description="A file of the static folder", examples=["board.js"])]


class SwaggerUiPath(_Model):
    filename: Annotated[
        str, Meta(min_length=1, description="A file of Swagger UI's distribution", examples=["swagger-ui.css"])
    ]
