"""HTTP adapters: parse the request, authorize, call the service, wrap the answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from services.registry.auth import Authorizer, page_limit
from services.registry.http import ApiError, ok, read_json
from services.registry.models import WebhookInput, WebhookPatch
from services.registry.service import WebhookService
from shared.events import CATALOG

DEFAULT_PAGE_SIZE = 50


class WebhookRoutes:
    def __init__(
        self,
        auth: Authorizer,
        webhooks: WebhookService,
        *,
        http_hosts: frozenset[str],
        page_size_max: int,
    ) -> None:
        self._auth = auth
        self._webhooks = webhooks
        self._context = {"http_hosts": http_hosts}
        self._page_size_max = page_size_max

    def register(self, app: web.Application) -> None:
        base = "/v1/accounts/{account_id}/webhooks"
        app.router.add_post(base, self.create)
        app.router.add_get(base, self.list)
        app.router.add_get(base + "/{webhook_id}", self.get)
        app.router.add_put(base + "/{webhook_id}", self.replace)
        app.router.add_patch(base + "/{webhook_id}", self.patch)
        app.router.add_delete(base + "/{webhook_id}", self.delete)

    async def _authorize(self, request: web.Request, *, write: bool) -> str:
        return await self._auth.account(request, write=write)

    async def create(self, request: web.Request) -> web.Response:
        account_id = await self._authorize(request, write=True)
        body = WebhookInput.model_validate(await read_json(request), context=self._context)
        webhook = await self._webhooks.create(account_id, body)
        return ok("Webhook created", {"webhook": webhook.model_dump(mode="json")}, status=201)

    async def list(self, request: web.Request) -> web.Response:
        account_id = await self._authorize(request, write=False)
        limit = self._limit(request)
        page = await self._webhooks.list(
            account_id, limit=limit, cursor=request.query.get("cursor") or None
        )
        return ok(
            "Webhooks",
            {
                "webhooks": [w.model_dump(mode="json") for w in page.webhooks],
                "next_cursor": page.next_cursor,
            },
        )

    async def get(self, request: web.Request) -> web.Response:
        account_id = await self._authorize(request, write=False)
        webhook = await self._webhooks.get(account_id, request.match_info["webhook_id"])
        return ok("Webhook", {"webhook": webhook.model_dump(mode="json")})

    async def replace(self, request: web.Request) -> web.Response:
        account_id = await self._authorize(request, write=True)
        body = WebhookInput.model_validate(await read_json(request), context=self._context)
        webhook = await self._webhooks.replace(account_id, request.match_info["webhook_id"], body)
        return ok("Webhook replaced", {"webhook": webhook.model_dump(mode="json")})

    async def patch(self, request: web.Request) -> web.Response:
        account_id = await self._authorize(request, write=True)
        body = WebhookPatch.model_validate(await read_json(request), context=self._context)
        webhook = await self._webhooks.patch(account_id, request.match_info["webhook_id"], body)
        return ok("Webhook updated", {"webhook": webhook.model_dump(mode="json")})

    async def delete(self, request: web.Request) -> web.Response:
        account_id = await self._authorize(request, write=True)
        webhook = await self._webhooks.delete(account_id, request.match_info["webhook_id"])
        return ok("Webhook deleted", {"webhook": webhook.model_dump(mode="json")})

    def _limit(self, request: web.Request) -> int:
        return page_limit(request, default=DEFAULT_PAGE_SIZE, maximum=self._page_size_max)


async def event_types(_request: web.Request) -> web.Response:
    return ok(
        "Event types",
        {"event_types": [event_type.public() for event_type in CATALOG.values()]},
    )


def health_routes(app: web.Application, readiness: Callable[[], Awaitable[dict[str, str]]]) -> None:
    async def healthz(_request: web.Request) -> web.Response:
        return ok("alive", {"status": "ok"})

    async def readyz(_request: web.Request) -> web.Response:
        checks = await readiness()
        if all(v == "ok" for v in checks.values()):
            return ok("ready", {"status": "ok", "checks": checks})
        raise ApiError(
            503,
            "not_ready",
            "not ready: " + ", ".join(f"{k}={v}" for k, v in checks.items() if v != "ok"),
        )

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
