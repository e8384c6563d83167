"""HTTP adapters for webhooks: parse the request, authorize, call the service, wrap the answer."""

from __future__ import annotations

from aiohttp import web

from services.registry.auth import Authorizer
from services.registry.http import ok, read_json
from services.registry.query import DEFAULT_PAGE_SIZE, page_limit
from services.registry.route_table import ACCOUNT_ERRORS, Answer, Route, register
from services.registry.webhooks.models import (
    WebhookCreatedData,
    WebhookData,
    WebhookInput,
    WebhookListData,
    WebhookPatch,
)
from services.registry.webhooks.service import WebhookService

WEBHOOKS = "/v1/accounts/{account_id}/webhooks"
WEBHOOK = WEBHOOKS + "/{webhook_id}"


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
        register(app, ROUTES, self)

    async def create(self, request: web.Request) -> web.Response:
        account_id = await self._auth.account(request, write=True)
        body = WebhookInput.model_validate(await read_json(request), context=self._context)
        webhook = await self._webhooks.create(account_id, body)
        return ok("Webhook created", {"webhook": webhook.model_dump(mode="json")}, status=201)

    async def list(self, request: web.Request) -> web.Response:
        account_id = await self._auth.account(request, write=False)
        limit = page_limit(request, default=DEFAULT_PAGE_SIZE, maximum=self._page_size_max)
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
        account_id = await self._auth.account(request, write=False)
        webhook = await self._webhooks.get(account_id, request.match_info["webhook_id"])
        return ok("Webhook", {"webhook": webhook.model_dump(mode="json")})

    async def replace(self, request: web.Request) -> web.Response:
        account_id = await self._auth.account(request, write=True)
        body = WebhookInput.model_validate(await read_json(request), context=self._context)
        webhook = await self._webhooks.replace(account_id, request.match_info["webhook_id"], body)
        return ok("Webhook replaced", {"webhook": webhook.model_dump(mode="json")})

    async def patch(self, request: web.Request) -> web.Response:
        account_id = await self._auth.account(request, write=True)
        body = WebhookPatch.model_validate(await read_json(request), context=self._context)
        webhook = await self._webhooks.patch(account_id, request.match_info["webhook_id"], body)
        return ok("Webhook updated", {"webhook": webhook.model_dump(mode="json")})

    async def delete(self, request: web.Request) -> web.Response:
        account_id = await self._auth.account(request, write=True)
        webhook = await self._webhooks.delete(account_id, request.match_info["webhook_id"])
        return ok("Webhook deleted", {"webhook": webhook.model_dump(mode="json")})


ROUTES = (
    Route(
        "POST",
        WEBHOOKS,
        WebhookRoutes.create,
        "Create a webhook; the answer carries its secret, once.",
        Answer(201, WebhookCreatedData),
        body=WebhookInput,
        errors=(*ACCOUNT_ERRORS, 409),
    ),
    Route(
        "GET",
        WEBHOOKS,
        WebhookRoutes.list,
        "List the account's webhooks, newest first.",
        Answer(200, WebhookListData),
        paged=True,
    ),
    Route("GET", WEBHOOK, WebhookRoutes.get, "Get a webhook.", Answer(200, WebhookData)),
    Route(
        "PUT",
        WEBHOOK,
        WebhookRoutes.replace,
        "Replace a webhook: every field takes the body's value or its default.",
        Answer(200, WebhookData),
        body=WebhookInput,
    ),
    Route(
        "PATCH",
        WEBHOOK,
        WebhookRoutes.patch,
        "Change some fields of a webhook.",
        Answer(200, WebhookData),
        body=WebhookPatch,
    ),
    Route(
        "DELETE",
        WEBHOOK,
        WebhookRoutes.delete,
        "Delete a webhook; the answer is its last state.",
        Answer(200, WebhookData),
    ),
)
