"""A small HTTP server for the consumers' probes: /healthz, /readyz and /metrics.

The registry serves these on its API port; fanout, delivery and the workflow runner have no
API, so each runs this on its own port (0 turns it off).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

Readiness = Callable[[], Awaitable[dict[str, str]]]


def health_app(readiness: Readiness, metrics: CollectorRegistry) -> web.Application:
    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_request: web.Request) -> web.Response:
        checks = await readiness()
        ready = all(value == "ok" for value in checks.values())
        return web.json_response(
            {"status": "ok" if ready else "not_ready", "checks": checks},
            status=200 if ready else 503,
            dumps=json.dumps,
        )

    async def prometheus(_request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(metrics), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", prometheus)
    return app


async def start_health_server(
    readiness: Readiness, metrics: CollectorRegistry, *, host: str, port: int
) -> web.AppRunner | None:
    """Serve the probes; returns the runner to clean up, or None when `port` is 0."""
    if port == 0:
        return None
    runner = web.AppRunner(health_app(readiness, metrics), access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
