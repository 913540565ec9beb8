"""The operations port: /healthz, /readyz and /metrics on a small aiohttp server."""

from __future__ import annotations

import logging

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from bot.ops.metrics import Metrics
from bot.ops.readiness import Readiness

log = logging.getLogger(__name__)


class OpsServer:
    """Serves the three endpoints inside the service's own event loop."""

    def __init__(self, readiness: Readiness, metrics: Metrics, host: str, port: int) -> None:
        self._readiness = readiness
        self._scrape = make_aiohttp_handler(metrics.registry)
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self) -> int:
        """Listen; returns the bound port (CHATOPS_OPS_PORT=0 picks a free one)."""
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        # Probes every few seconds would drown the log; errors still log.
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self._host, self._port).start()
        except BaseException:
            await self._runner.cleanup()
            raise
        self.port = int(self._runner.addresses[0][1])
        log.info("operations port: http://%s:%d (/healthz /readyz /metrics)", self._host, self.port)
        return self.port

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, request: web.Request) -> web.Response:
        # Answering at all is the proof: the event loop runs. Nothing else is consulted.
        return web.json_response({"alive": True})

    async def _readyz(self, request: web.Request) -> web.Response:
        report = await self._readiness.check()
        return web.json_response(report.as_json(), status=200 if report.ready else 503)

    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        # The state gauges (ready, database, connections) are read now, at scrape time.
        await self._readiness.check()
        return await self._scrape(request)
