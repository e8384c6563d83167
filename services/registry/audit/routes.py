"""HTTP adapter for the audit log: a page of the account's changes (OWNER and ADMIN keys)."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from services.registry.accounts.models import parse_rfc3339
from services.registry.audit.models import AuditListData
from services.registry.audit.service import AuditService
from services.registry.auth import Authorizer
from services.registry.http import ApiError, ok
from services.registry.policy import WRITER_ROLES, Role
from services.registry.query import DEFAULT_PAGE_SIZE, page_limit
from services.registry.route_table import Answer, QueryParam, Route, register

AUDIT_LOG = "/v1/accounts/{account_id}/audit-log"


def since_filter(request: web.Request) -> datetime | None:
    """`since` as an instant in UTC; empty counts as left out; a 400 naming it otherwise."""
    raw = request.query.get("since") or None
    try:
        return parse_rfc3339(raw)
    except ValueError as exc:
        raise ApiError(
            400, "validation_error", f"since: {exc}", [{"field": "since", "message": str(exc)}]
        ) from None


class AuditRoutes:
    def __init__(self, auth: Authorizer, audit: AuditService, *, page_size_max: int) -> None:
        self._auth = auth
        self._audit = audit
        self._page_size_max = page_size_max

    def register(self, app: web.Application) -> None:
        register(app, ROUTES, self)

    async def list(self, request: web.Request) -> web.Response:
        actor = await self._auth.actor(request, write=False)
        if Role(actor.role) not in WRITER_ROLES:
            raise ApiError(403, "forbidden", "only OWNER and ADMIN keys may read the audit log")
        since = since_filter(request)
        limit = page_limit(request, default=DEFAULT_PAGE_SIZE, maximum=self._page_size_max)
        page = await self._audit.list(
            actor.account_id, since=since, limit=limit, cursor=request.query.get("cursor") or None
        )
        return ok(
            "Audit log",
            {
                "entries": [e.model_dump(mode="json") for e in page.entries],
                "next_cursor": page.next_cursor,
            },
        )


ROUTES = (
    Route(
        "GET",
        AUDIT_LOG,
        AuditRoutes.list,
        "Every change to the account, newest first: through the API (which key, its role) and"
        " by the platform itself (actor `system`), with the fields changed (never a secret;"
        " custom header values as `****`; a workflow's code not copied). OWNER and ADMIN"
        " keys only.",
        Answer(200, AuditListData),
        paged=True,
        query=(
            QueryParam(
                "since",
                {"type": "string", "format": "date-time"},
                "Only changes made at or after this instant (RFC 3339 with an offset).",
            ),
        ),
    ),
)
