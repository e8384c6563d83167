"""The routes outside any account: liveness, readiness, the event catalog, metrics and the
OpenAPI document."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any, Literal, cast

from aiohttp import web
from aiohttp.helpers import ETAG_ANY
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field

from services.registry.http import ApiError, ok
from services.registry.route_table import Answer, Route, register
from shared.events import CATALOG, example_payload, payload_schema

# The catalog changes only with a release: any cache may keep it a while.
CATALOG_CACHE_CONTROL = "public, max-age=300"


class EventTypeInfo(BaseModel):
    name: str
    scope: Literal["room", "organization"]
    description: str
    payload_schema: dict[str, Any] = Field(
        description="JSON Schema (2020-12) of the body a webhook receives for this event."
    )
    example: dict[str, Any] = Field(
        description="A realistic body a webhook receives for this event, exactly as delivered"
        " (it validates against payload_schema)."
    )


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
        # The same for every caller and fixed for the process: built once, kept as the
        # envelope's UTF-8 bytes (json_response encodes its text).
        self._catalog = cast(bytes, ok("Event types", catalog_data()).body)
        self._catalog_etag = hashlib.sha256(self._catalog).hexdigest()[:32]

    def register(self, app: web.Application) -> None:
        register(app, ROUTES, self)

    async def event_types(self, request: web.Request) -> web.Response:
        """200 with the catalog, or 304 when If-None-Match names its ETag (or is `*`)."""
        unchanged = any(
            tag.value in (self._catalog_etag, ETAG_ANY) for tag in request.if_none_match or ()
        )
        if unchanged:
            response = web.Response(status=304)
        else:
            response = web.Response(
                body=self._catalog, content_type="application/json", charset="utf-8"
            )
        response.etag = self._catalog_etag
        response.headers["Cache-Control"] = CATALOG_CACHE_CONTROL
        return response

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


def catalog_data() -> dict[str, Any]:
    """`data` of `GET /v1/event-types`: each entry with its payload's schema and an example."""
    return EventTypesData(
        event_types=[
            EventTypeInfo(
                **spec.public(),
                payload_schema=payload_schema(spec),
                example=example_payload(spec.name),
            )
            for spec in CATALOG.values()
        ]
    ).model_dump(mode="json")


# None of these needs a key: no 401, 403 or 429.
OPEN = {"errors": (), "secured": False}

ROUTES = (
    Route(
        "GET",
        "/v1/event-types",
        SystemRoutes.event_types,
        "The event catalog.",
        Answer(
            200,
            EventTypesData,
            description="The event catalog: each event's scope, description, payload schema"
            f" and example. Sent with `Cache-Control: {CATALOG_CACHE_CONTROL}` and an `ETag`;"
            " a request whose `If-None-Match` names that ETag gets 304 and no body.",
        ),
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
