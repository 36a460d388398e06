"""`GET /metrics`: on an admin listener of its own (127.0.0.1 by default), or on the main port
when `metrics.on_main_port` says so."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.typedefs import Handler

from ..settings import MetricsSettings
from ..tasks import CleanupContext
from .export import CONTENT_TYPE, Exporter

log = logging.getLogger(__name__)

PATH = "/metrics"


def metrics_handler(exporter: Exporter) -> Handler:
    """The handler that answers a scrape with every metric in Prometheus's text format."""

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=await exporter.render(), headers={"Content-Type": CONTENT_TYPE})

    return metrics


def admin_listener(exporter: Exporter, settings: MetricsSettings, *, reuse_port: bool) -> CleanupContext:
    """An app lifetime that serves /metrics on `settings.host`:`settings.port` while the app runs
    (`reuse_port`: every process of `--workers N` listens on it, any one answers for all)."""

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        admin = web.Application()
        admin.router.add_get(PATH, metrics_handler(exporter))
        runner = web.AppRunner(admin, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, settings.host, settings.port, reuse_port=reuse_port or None).start()
        except BaseException:
            await runner.cleanup()
            raise
        log.info("metrics at http://%s:%d%s", settings.host, settings.port, PATH)
        yield
        await runner.cleanup()

    return lifetime
