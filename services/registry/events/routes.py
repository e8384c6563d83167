"""HTTP adapters for the event log: a page of the account's events, and one event."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TypeVar

from aiohttp import web

from services.registry.auth import Authorizer
from services.registry.events.models import STATUSES, EventData, EventFilters, EventListData
from services.registry.events.service import EventLogService
from services.registry.http import ApiError, ok
from services.registry.query import DEFAULT_PAGE_SIZE, check_status, page_limit, time_window
from services.registry.route_table import Answer, QueryParam, Route, register
from shared.events import CATALOG, event_names

EVENTS = "/v1/accounts/{account_id}/events"
EVENT = EVENTS + "/{event_id}"
MAX_ROOM_ID_CHARS = 200
T = TypeVar("T")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def event_filters(query: Mapping[str, str]) -> EventFilters:
    """The filters of `GET /events`, or a 400 naming every field at fault. Empty: left out."""
    problems: dict[str, str] = {}
    event = _parsed(query, "event", _event_name, problems)
    room_id = _parsed(query, "roomId", _room_id, problems)
    status = _parsed(query, "status", lambda raw: check_status(raw, allowed=STATUSES), problems)
    since, until = time_window(query, problems)
    filters = EventFilters(event=event, room_id=room_id, status=status, since=since, until=until)
    if problems:
        details = [{"field": f, "message": m} for f, m in problems.items()]
        summary = "; ".join(f"{f}: {m}" for f, m in problems.items())
        raise ApiError(400, "validation_error", summary, details)
    return filters


def _parsed(
    query: Mapping[str, str], field: str, parse: Callable[[str], T], problems: dict[str, str]
) -> T | None:
    """`field` parsed, or None when absent or empty; what is wrong with it goes to `problems`."""
    raw = query.get(field) or None
    try:
        return None if raw is None else parse(raw)
    except ValueError as exc:
        problems[field] = str(exc)
        return None


def _event_name(raw: str) -> str:
    if raw not in CATALOG:
        raise ValueError("must be an event name of the catalog (GET /v1/event-types)")
    return raw


def _room_id(raw: str) -> str:
    if len(raw) > MAX_ROOM_ID_CHARS:
        raise ValueError(f"must be at most {MAX_ROOM_ID_CHARS} characters")
    if _UNSTORABLE.search(raw):
        raise ValueError("must not hold NUL or a lone surrogate")
    return raw


class EventRoutes:
    def __init__(self, auth: Authorizer, log: EventLogService, *, page_size_max: int) -> None:
        self._auth = auth
        self._log = log
        self._page_size_max = page_size_max

    def register(self, app: web.Application) -> None:
        register(app, ROUTES, self)

    async def list(self, request: web.Request) -> web.Response:
        account_id = await self._auth.account(request, write=False)
        filters = event_filters(request.query)
        limit = page_limit(request, default=DEFAULT_PAGE_SIZE, maximum=self._page_size_max)
        page = await self._log.list(
            account_id, filters, limit=limit, cursor=request.query.get("cursor") or None
        )
        return ok(
            "Events",
            {
                "events": [e.model_dump(mode="json") for e in page.events],
                "next_cursor": page.next_cursor,
            },
        )

    async def get(self, request: web.Request) -> web.Response:
        account_id = await self._auth.account(request, write=False)
        detail = await self._log.get(account_id, request.match_info["event_id"])
        return ok(
            "Event",
            {
                "event": detail.event.model_dump(mode="json"),
                "payload": detail.payload,
                "webhooks": [w.model_dump(mode="json") for w in detail.webhooks],
                "workflows": [w.model_dump(mode="json") for w in detail.workflows],
            },
        )


_INSTANT = {"type": "string", "format": "date-time"}
FILTERS = (
    QueryParam("event", {"enum": event_names()}, "Only events of this name."),
    QueryParam(
        "roomId",
        {"type": "string", "maxLength": MAX_ROOM_ID_CHARS},
        "Only events of this room.",
    ),
    QueryParam(
        "status",
        {"enum": list(STATUSES)},
        "Only events accepted (routed, with or without subscribers), or only those rejected at"
        " ingress.",
    ),
    QueryParam("since", _INSTANT, "Only events received at or after this instant."),
    QueryParam("until", _INSTANT, "Only events received before this instant."),
)
ROUTES = (
    Route(
        "GET",
        EVENTS,
        EventRoutes.list,
        "Every event received for the account (accepted, with or without subscribers, and"
        " rejected at ingress with the reason), newest first.",
        Answer(200, EventListData),
        paged=True,
        query=FILTERS,
    ),
    Route(
        "GET",
        EVENT,
        EventRoutes.get,
        "One event: its payload, and the delivery or execution of each webhook and workflow"
        " it reached.",
        Answer(200, EventData),
    ),
)
