"""HTTP adapters for the delivery log: list, one with its attempts, redeliver, test ping."""

from __future__ import annotations

import time

from aiohttp import web

from services.registry.auth import Authorizer, too_many
from services.registry.deliveries.models import (
    STATUSES,
    DeliveryData,
    DeliveryListData,
    DeliveryQueuedData,
)
from services.registry.deliveries.service import DeliveryLogService
from services.registry.deliveries.stats import DEFAULT_WINDOW, WINDOWS, WebhookStatsData
from services.registry.http import ApiError, ok
from services.registry.query import (
    DEFAULT_PAGE_SIZE,
    INSTANT_SCHEMA,
    page_limit,
    status_filter,
    window_filter,
)
from services.registry.rate_limits import Buckets
from services.registry.route_table import Answer, QueryParam, Route, register

WEBHOOK = "/v1/accounts/{account_id}/webhooks/{webhook_id}"
DELIVERIES = WEBHOOK + "/deliveries"
DELIVERY = DELIVERIES + "/{delivery_id}"


class DeliveryRoutes:
    def __init__(
        self,
        auth: Authorizer,
        log: DeliveryLogService,
        *,
        page_size_max: int,
        sends: Buckets | None = None,
    ) -> None:
        self._auth = auth
        self._log = log
        self._page_size_max = page_size_max
        # Redeliver orders and test pings, per webhook: each one is a request to its endpoint.
        self._sends = sends or Buckets(rate_per_s=1e9, burst=10**9)

    def register(self, app: web.Application) -> None:
        register(app, ROUTES, self)

    def _spend_send(self, request: web.Request) -> None:
        webhook_id = request.match_info["webhook_id"].lower()
        spent = self._sends.take(webhook_id, now_ms=int(time.monotonic() * 1000))
        if not spent.allowed:
            raise too_many(spent, "sent to this webhook (redeliveries and test pings)")

    async def list(self, request: web.Request) -> web.Response:
        account_id = await self._auth.account(request, write=False)
        limit = page_limit(request, default=DEFAULT_PAGE_SIZE, maximum=self._page_size_max)
        status = status_filter(request, STATUSES)
        since, until = window_filter(request)
        page = await self._log.list(
            account_id,
            request.match_info["webhook_id"],
            limit=limit,
            status=status,
            cursor=request.query.get("cursor") or None,
            since=since,
            until=until,
        )
        return ok(
            "Deliveries",
            {
                "deliveries": [d.model_dump(mode="json") for d in page.deliveries],
                "next_cursor": page.next_cursor,
            },
        )

    async def get(self, request: web.Request) -> web.Response:
        account_id = await self._auth.account(request, write=False)
        delivery, attempts = await self._log.get(
            account_id, request.match_info["webhook_id"], request.match_info["delivery_id"]
        )
        return ok(
            "Delivery",
            {
                "delivery": delivery.model_dump(mode="json"),
                "attempts": [a.model_dump(mode="json") for a in attempts],
            },
        )

    async def stats(self, request: web.Request) -> web.Response:
        account_id = await self._auth.account(request, write=False)
        window = request.query.get("window") or DEFAULT_WINDOW
        if window not in WINDOWS:
            allowed = ", ".join(WINDOWS)
            raise ApiError(
                400,
                "validation_error",
                f"window: must be one of {allowed}",
                [{"field": "window", "message": f"must be one of {allowed}"}],
            )
        stats = await self._log.stats(account_id, request.match_info["webhook_id"], window)
        return ok("Webhook stats", {"stats": stats.model_dump(mode="json")})

    async def redeliver(self, request: web.Request) -> web.Response:
        actor = await self._auth.actor(request, write=True)
        self._spend_send(request)
        delivery_id = request.match_info["delivery_id"]
        await self._log.redeliver(
            actor.account_id, request.match_info["webhook_id"], delivery_id, actor=actor
        )
        return ok("Redelivery queued", {"delivery_id": delivery_id.lower()}, status=202)

    async def test(self, request: web.Request) -> web.Response:
        actor = await self._auth.actor(request, write=True)
        self._spend_send(request)
        delivery_id, event_id = await self._log.send_test(
            actor.account_id, request.match_info["webhook_id"], actor=actor
        )
        return ok(
            "Test delivery queued", {"delivery_id": delivery_id, "event_id": event_id}, status=202
        )


ROUTES = (
    Route(
        "GET",
        DELIVERIES,
        DeliveryRoutes.list,
        "The webhook's delivery log, newest first, by status and by when each was created.",
        Answer(200, DeliveryListData),
        paged=True,
        status_filter=STATUSES,
        query=(
            QueryParam(
                "since", INSTANT_SCHEMA, "Only deliveries created at or after this instant."
            ),
            QueryParam("until", INSTANT_SCHEMA, "Only deliveries created before this instant."),
        ),
        portal=True,
    ),
    Route(
        "GET",
        DELIVERY,
        DeliveryRoutes.get,
        "One delivery with every attempt made.",
        Answer(200, DeliveryData),
        portal=True,
    ),
    Route(
        "GET",
        WEBHOOK + "/stats",
        DeliveryRoutes.stats,
        "The webhook's endpoint health over a window: attempts, outcomes, success rate,"
        " latency percentiles, last success and failure, the failure streak, and buckets for"
        " a chart; from aggregates kept as attempts are recorded.",
        Answer(200, WebhookStatsData),
        query=(
            QueryParam(
                "window",
                {"enum": list(WINDOWS), "default": DEFAULT_WINDOW},
                "The last hour (minute buckets), day or week (hour buckets).",
            ),
        ),
        portal=True,
    ),
    Route(
        "POST",
        DELIVERY + "/redeliver",
        DeliveryRoutes.redeliver,
        "Attempt the delivery again now, even after it failed.",
        Answer(202, DeliveryQueuedData),
        portal=True,
    ),
    Route(
        "POST",
        WEBHOOK + "/test",
        DeliveryRoutes.test,
        "Send a `webhook.test` ping through the delivery path.",
        Answer(202, DeliveryQueuedData),
        portal=True,
    ),
)
