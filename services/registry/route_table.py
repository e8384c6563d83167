"""The registry's route table: each entry both registers an aiohttp route and documents it
in /openapi.json (openapi.py), so the two cannot disagree."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import BaseModel

# What every route under /v1/accounts/{account_id} may refuse with (429 comes with the key).
ACCOUNT_ERRORS = (400, 401, 403, 404)


@dataclass(frozen=True)
class Answer:
    """A route's success: the envelope with `data` (a model; None: null), or, for the few
    routes outside the envelope, `schema` as `media_type`. `description` defaults to the
    route's summary."""

    status: int
    data: type[BaseModel] | None = None
    schema: dict[str, Any] | None = None
    media_type: str = "application/json"
    description: str | None = None


@dataclass(frozen=True)
class QueryParam:
    """An optional query parameter a route reads besides limit, cursor and status, as
    /openapi.json documents it (`schema` is its JSON Schema). Sent empty (`?since=`) it
    counts as left out, as every query parameter of this API does (`allowEmptyValue`)."""

    name: str
    schema: dict[str, Any]
    description: str
    empty_is_absent: bool = True


@dataclass(frozen=True)
class Route:
    """One operation. `handler` is a method of the room's routes class (bound when the room
    registers); `paged` adds the limit and cursor parameters, `status_filter` a status one,
    `query` any others;
    `secured` routes need an API key (and may answer 429); `checks_code` ones may answer 503
    while every code check is busy; `portal` ones also take a customer portal session (the
    Authorizer refuses one on every other route, and scopes it on these)."""

    method: str
    path: str
    handler: Callable[..., Awaitable[web.StreamResponse]]
    summary: str
    answer: Answer
    body: type[BaseModel] | None = None
    errors: tuple[int, ...] = ACCOUNT_ERRORS
    paged: bool = False
    status_filter: tuple[str, ...] = ()
    query: tuple[QueryParam, ...] = ()
    secured: bool = True
    checks_code: bool = False
    portal: bool = False

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)


def register(app: web.Application, routes: Sequence[Route], handlers: object) -> None:
    """Add each route to `app`, its handler the method of that name on `handlers`; each
    request carries its Route (`request[ROUTE]`), so the Authorizer reads what it allows
    from the same entry the document is made of."""
    for route in routes:
        handler = _carrying(route, getattr(handlers, route.handler.__name__))
        if route.method == "GET":
            app.router.add_get(route.path, handler)  # and HEAD, as aiohttp does by default
        else:
            app.router.add_route(route.method, route.path, handler)


ROUTE = web.RequestKey("route", Route)


def _carrying(
    route: Route, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        request[ROUTE] = route
        return await handler(request)

    return handle
