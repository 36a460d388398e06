"""`GET /metrics`: on an admin listener of its own (127.0.0.1 by default), or on the main port
when `metrics.on_main_port` says so."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from ..api.keys import METRICS
from ..drain import METRICS_PORT, listen_error
from ..settings import MetricsSettings
from ..tasks import CleanupContext
from .export import CONTENT_TYPE, Exporter

log = logging.getLogger(__name__)

PATH = "/metrics"


async def metrics(request: web.Request) -> web.Response:
    """Answer a scrape with every metric in Prometheus's text format."""
    return web.Response(body=await request.app[METRICS].render(), headers={"Content-Type": CONTENT_TYPE})


def admin_listener(exporter: Exporter, settings: MetricsSettings, *, reuse_port: bool) -> CleanupContext:
    """An app lifetime that serves /metrics on `settings.host`:`settings.port` while the app runs
    (`reuse_port`: every process of `--workers N` listens on it, any one answers for all)."""

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        admin = web.Application()
        admin[METRICS] = exporter
        admin.router.add_get(PATH, metrics)
        runner = web.AppRunner(admin, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, settings.host, settings.port, reuse_port=reuse_port or None).start()
        except OSError as exc:  # taken since run.py looked: one line, as for the main port
            await runner.cleanup()
            raise listen_error(settings.host, settings.port, exc, remedy=METRICS_PORT) from None
        except BaseException:
            await runner.cleanup()
            raise
        log.info("metrics at http://%s:%d%s", settings.host, settings.port, PATH)
        yield
        await runner.cleanup()

    return lifetime
