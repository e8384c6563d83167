"""HTTP adapters for portal sessions: an OWNER or ADMIN key makes a link; the link's holder
exchanges it, with no key, for a session token."""

from __future__ import annotations

from aiohttp import web

from services.registry.auth import ApiLimits, Authorizer, too_many
from services.registry.http import ApiError, ok, read_json
from services.registry.portal.models import (
    PortalExchangeInput,
    PortalLinkData,
    PortalSessionData,
    PortalSessionInput,
)
from services.registry.portal.service import LinkRefused, PortalService
from services.registry.route_table import Answer, Route, register

PORTAL_SESSIONS = "/v1/accounts/{account_id}/portal-sessions"
EXCHANGE = "/v1/portal-sessions/exchange"

_REFUSED = {
    "used": "this portal link was already used: ask for a new one",
    "expired": "this portal link has expired: ask for a new one",
    "unknown": "this portal link is not valid",
}


class PortalRoutes:
    def __init__(self, auth: Authorizer, portal: PortalService, limits: ApiLimits) -> None:
        self._auth = auth
        self._portal = portal
        self._limits = limits

    def register(self, app: web.Application) -> None:
        register(app, ROUTES, self)

    async def create(self, request: web.Request) -> web.Response:
        actor = await self._auth.actor(request, write=True)
        given = await read_json(request) if request.body_exists else {}
        body = PortalSessionInput.model_validate(given)
        link = await self._portal.create(actor.account_id, body, actor=actor)
        data = PortalLinkData(url=link.url, expires_at=link.expires_at)
        return ok("Portal session created", data.model_dump(mode="json"), status=201)

    async def exchange(self, request: web.Request) -> web.Response:
        body = PortalExchangeInput.model_validate(await read_json(request))
        # Spent only by links refused, as the address bucket is by unknown keys: a flood of
        # guessed links is refused before any lookup once it is empty.
        buckets, address = self._limits.unknown_keys, request.remote or "unknown"
        held = buckets.peek(address, now_ms=self._limits.clock_ms())
        if not held.allowed:
            raise too_many(held, "with links that are not valid from this address")
        try:
            exchanged = await self._portal.exchange(body.token)
        except LinkRefused as exc:
            buckets.take(address, now_ms=self._limits.clock_ms())
            raise ApiError(401, "unauthorized", _REFUSED[exc.reason]) from None
        data = PortalSessionData.of(exchanged.session, exchanged.token)
        return ok("Portal session", data.model_dump(mode="json"))


ROUTES = (
    Route(
        "POST",
        PORTAL_SESSIONS,
        PortalRoutes.create,
        "Make a customer portal link (OWNER and ADMIN keys): it opens the console's portal,"
        " where the customer manages the account's webhooks (all, or those listed) until it"
        " expires. The link works once; the body is optional.",
        Answer(201, PortalLinkData),
        body=PortalSessionInput,
    ),
    Route(
        "POST",
        EXCHANGE,
        PortalRoutes.exchange,
        "Exchange a portal link's token, once, for a session token (no API key): a Bearer"
        " token for the webhook routes, `GET /v1/me` and the event catalog until the link's"
        " expiry.",
        Answer(200, PortalSessionData),
        body=PortalExchangeInput,
        errors=(400, 401, 429),
        secured=False,  # the link's token is in the body; no Authorization is read
    ),
)
