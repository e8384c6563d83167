"""The routes outside any account: liveness, readiness, the event catalog, metrics and the
OpenAPI document."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel

from services.registry.http import ApiError, ok
from services.registry.route_table import Answer, Route, register
from shared.events import CATALOG


class EventTypeInfo(BaseModel):
    name: str
    scope: Literal["room", "organization"]
    description: str


class EventTypesData(BaseModel):
    event_types: list[EventTypeInfo]


class HealthData(BaseModel):
    status: str
    checks: dict[str, str] | None = None


class SystemRoutes:
    """`readiness` maps each check to "ok" or what failed; `document` is served as it is."""

    def __init__(
        self,
        readiness: Callable[[], Awaitable[dict[str, str]]],
        metrics: CollectorRegistry,
        document: dict[str, Any],
    ) -> None:
        self._readiness = readiness
        self._metrics = metrics
        self._document = document

    def register(self, app: web.Application) -> None:
        register(app, ROUTES, self)

    async def event_types(self, _request: web.Request) -> web.Response:
        return ok(
            "Event types",
            {"event_types": [event_type.public() for event_type in CATALOG.values()]},
        )

    async def healthz(self, _request: web.Request) -> web.Response:
        return ok("alive", {"status": "ok"})

    async def readyz(self, _request: web.Request) -> web.Response:
        checks = await self._readiness()
        if all(v == "ok" for v in checks.values()):
            return ok("ready", {"status": "ok", "checks": checks})
        raise ApiError(
            503,
            "not_ready",
            "not ready: " + ", ".join(f"{k}={v}" for k, v in checks.items() if v != "ok"),
        )

    async def prometheus(self, _request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self._metrics), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def openapi(self, _request: web.Request) -> web.Response:
        return web.json_response(self._document)


# None of these needs a key: no 401, 403 or 429.
OPEN = {"errors": (), "secured": False}

ROUTES = (
    Route(
        "GET",
        "/v1/event-types",
        SystemRoutes.event_types,
        "The event catalog.",
        Answer(200, EventTypesData),
        portal=True,
        **OPEN,
    ),
    Route("GET", "/healthz", SystemRoutes.healthz, "Liveness.", Answer(200, HealthData), **OPEN),
    Route(
        "GET",
        "/readyz",
        SystemRoutes.readyz,
        "Readiness: Postgres answers and the outbox relay is healthy.",
        Answer(200, HealthData),
        errors=(503,),
        secured=False,
    ),
    Route(
        "GET",
        "/metrics",
        SystemRoutes.prometheus,
        "Prometheus metrics.",
        Answer(
            200,
            schema={"type": "string"},
            media_type="text/plain",
            description="Prometheus text exposition format.",
        ),
        **OPEN,
    ),
    Route(
        "GET",
        "/openapi.json",
        SystemRoutes.openapi,
        "This document.",
        Answer(200, schema={"type": "object"}, description="The OpenAPI 3.1 document."),
        **OPEN,
    ),
)
