"""HTTP adapters for webhooks: parse the request, authorize, call the service, wrap the answer."""

from __future__ import annotations

from aiohttp import web

from services.registry.auth import Authorizer
from services.registry.http import ok, ok_serialized, read_json
from services.registry.query import DEFAULT_PAGE_SIZE, page_limit
from services.registry.route_table import ACCOUNT_ERRORS, Answer, Route, register
from services.registry.webhooks.models import (
    SecretRotation,
    WebhookCreatedData,
    WebhookCreateInput,
    WebhookData,
    WebhookInput,
    WebhookListData,
    WebhookPatch,
)
from services.registry.webhooks.records import list_document
from services.registry.webhooks.service import WebhookService

WEBHOOKS = "/v1/accounts/{account_id}/webhooks"
WEBHOOK = WEBHOOKS + "/{webhook_id}"
ROTATE_SECRET = WEBHOOK + "/rotate-secret"


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
        caller = await self._auth.access(request, write=True)
        body = WebhookCreateInput.model_validate(await read_json(request), context=self._context)
        webhook = await self._webhooks.create(
            caller.account_id, body, secret=body.secret, actor=caller.actor
        )
        await self._auth.add_webhook(caller, webhook.id)
        return ok("Webhook created", {"webhook": webhook.model_dump(mode="json")}, status=201)

    async def list(self, request: web.Request) -> web.Response:
        caller = await self._auth.access(request, write=False)
        limit = page_limit(request, default=DEFAULT_PAGE_SIZE, maximum=self._page_size_max)
        page = await self._webhooks.list(
            caller.account_id,
            limit=limit,
            cursor=request.query.get("cursor") or None,
            reveal=caller.reveal,
            only=caller.webhook_ids,
        )
        return ok_serialized("Webhooks", list_document(page.webhooks, page.next_cursor))

    async def get(self, request: web.Request) -> web.Response:
        caller = await self._auth.access(request, write=False)
        webhook = await self._webhooks.get(
            caller.account_id, request.match_info["webhook_id"], reveal=caller.reveal
        )
        return ok("Webhook", {"webhook": webhook.model_dump(mode="json")})

    async def rotate_secret(self, request: web.Request) -> web.Response:
        actor = await self._auth.actor(request, write=True)
        given = await read_json(request) if request.body_exists else {}
        body = SecretRotation.model_validate(given)
        webhook = await self._webhooks.rotate_secret(
            actor.account_id,
            request.match_info["webhook_id"],
            overlap_s=body.overlap_seconds,
            actor=actor,
        )
        return ok("Secret rotated", {"webhook": webhook.model_dump(mode="json")})

    async def replace(self, request: web.Request) -> web.Response:
        actor = await self._auth.actor(request, write=True)
        body = WebhookInput.model_validate(await read_json(request), context=self._context)
        webhook = await self._webhooks.replace(
            actor.account_id, request.match_info["webhook_id"], body, actor=actor
        )
        return ok("Webhook replaced", {"webhook": webhook.model_dump(mode="json")})

    async def patch(self, request: web.Request) -> web.Response:
        actor = await self._auth.actor(request, write=True)
        body = WebhookPatch.model_validate(await read_json(request), context=self._context)
        webhook = await self._webhooks.patch(
            actor.account_id, request.match_info["webhook_id"], body, actor=actor
        )
        return ok("Webhook updated", {"webhook": webhook.model_dump(mode="json")})

    async def delete(self, request: web.Request) -> web.Response:
        actor = await self._auth.actor(request, write=True)
        webhook = await self._webhooks.delete(
            actor.account_id, request.match_info["webhook_id"], actor=actor
        )
        return ok("Webhook deleted", {"webhook": webhook.model_dump(mode="json")})


ROUTES = (
    Route(
        "POST",
        WEBHOOKS,
        WebhookRoutes.create,
        "Create a webhook; the answer carries its secret, once.",
        Answer(201, WebhookCreatedData),
        body=WebhookCreateInput,
        errors=(*ACCOUNT_ERRORS, 409),
        portal=True,
    ),
    Route(
        "GET",
        WEBHOOKS,
        WebhookRoutes.list,
        "List the account's webhooks, newest first.",
        Answer(200, WebhookListData),
        paged=True,
        portal=True,
    ),
    Route(
        "GET", WEBHOOK, WebhookRoutes.get, "Get a webhook.", Answer(200, WebhookData), portal=True
    ),
    Route(
        "PUT",
        WEBHOOK,
        WebhookRoutes.replace,
        "Replace a webhook: every field takes the body's value or its default.",
        Answer(200, WebhookData),
        body=WebhookInput,
        portal=True,
    ),
    Route(
        "PATCH",
        WEBHOOK,
        WebhookRoutes.patch,
        "Change some fields of a webhook.",
        Answer(200, WebhookData),
        body=WebhookPatch,
        portal=True,
    ),
    Route(
        "POST",
        ROTATE_SECRET,
        WebhookRoutes.rotate_secret,
        "Give a webhook a new secret, answered once; the replaced one keeps signing beside it "
        "for `overlapSeconds` (default 86400; the body is optional).",
        Answer(200, WebhookCreatedData),
        body=SecretRotation,
        portal=True,
    ),
    Route(
        "DELETE",
        WEBHOOK,
        WebhookRoutes.delete,
        "Delete a webhook; the answer is its last state.",
        Answer(200, WebhookData),
        portal=True,
    ),
)
