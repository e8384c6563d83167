"""The OpenAPI 3.1 document of the registry, derived from the route table (route_table.py)
and the pydantic models the routes read and answer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from services.registry.accounts.routes import ROUTES as KEY_ROUTES
from services.registry.audit.routes import ROUTES as AUDIT_ROUTES
from services.registry.deliveries.routes import ROUTES as DELIVERY_ROUTES
from services.registry.events.routes import ROUTES as EVENT_ROUTES
from services.registry.http import ErrorEnvelope
from services.registry.jobs.routes import ROUTES as JOB_ROUTES
from services.registry.portal.routes import ROUTES as PORTAL_ROUTES
from services.registry.route_table import Answer, Route
from services.registry.system_routes import ROUTES as SYSTEM_ROUTES
from services.registry.webhooks.routes import ROUTES as WEBHOOK_ROUTES
from services.registry.workflows.routes import ROUTES as WORKFLOW_ROUTES

# Every route the registry serves, in the order the document lists them.
ROUTES: tuple[Route, ...] = (
    *WEBHOOK_ROUTES,
    *DELIVERY_ROUTES,
    *JOB_ROUTES,
    *WORKFLOW_ROUTES,
    *EVENT_ROUTES,
    *KEY_ROUTES,
    *PORTAL_ROUTES,
    *AUDIT_ROUTES,
    *SYSTEM_ROUTES,
)

_REF = "#/components/schemas/{model}"

_ERRORS = {
    400: "Invalid input: `error.details` names each field and what is wrong with it (JSON"
    " nested deeper than 64 levels, NUL or a lone surrogate in any text included).",
    401: "Missing or invalid API key or portal session, or an expired portal session.",
    403: "The key belongs to another account, or its role may not do this (only OWNER and"
    " ADMIN write and read the audit log; only OWNER manages API keys); or a portal session"
    " is used off the webhook routes, on another account, or to write while read-only.",
    404: "No such webhook, workflow, delivery, execution, API key or job in this account.",
    409: "The account holds as many webhooks, workflows or live API keys as its quota allows"
    " (`quota_exceeded`), the key is the account's last live OWNER key"
    " (`last_owner_key`), or the account has as many recovery jobs queued or running as it"
    " may (`too_many_jobs`).",
    413: "The body is larger than the server accepts.",
    429: "Too many requests: with this key or portal session, from this address without a"
    " valid key or portal link, or (redeliver, test) to this webhook. `Retry-After` says when"
    " to try again.",
    503: "Not ready: `error.message` names the failing checks.",
}
_BUSY = "Every workflow code check is busy: `Retry-After` says when to try again."
_RATE_HEADERS = {
    name: {"description": description, "schema": {"type": "integer", "minimum": 0}}
    for name, description in (
        ("Retry-After", "Seconds until a request may pass."),
        ("RateLimit-Limit", "Requests the bucket holds when full."),
        ("RateLimit-Remaining", "Requests that would pass now."),
        ("RateLimit-Reset", "Seconds until the bucket is full again."),
    )
}
# Any request, before the API reads it: aiohttp's HTTP parser answers on its own, in plain text.
_HTTP_400 = (
    "As text/plain: the HTTP layer refused the request before the API read it (a request line"
    " or a header over 8,190 bytes, or malformed HTTP)."
)
_PATH_PARAMS = {
    "account_id": "The account (organization) id.",
    "webhook_id": "The webhook id.",
    "delivery_id": "The delivery id.",
    "workflow_id": "The workflow id.",
    "execution_id": "The execution id.",
    "version": "The workflow version's number (from 1).",
    "job_id": "The job id.",
    "event_id": "The event's id, as its producer sent it.",
    "key_id": "The API key id.",
}


def build_openapi(
    *, version: str, page_size_max: int, routes: Sequence[Route] = ROUTES
) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, page_size_max)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "roomhooks registry",
            "version": version,
            "description": "Webhooks for collaboration-room and organization events.",
        },
        "components": {
            "schemas": _schemas(routes),
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"apiKey": []}],
        "paths": paths,
    }


def _schemas(routes: Sequence[Route]) -> dict[str, Any]:
    """Request bodies as they validate, answers as they serialize, and the error envelope."""
    bodies = {r.body: "validation" for r in routes if r.body is not None}
    answers = {r.answer.data: "serialization" for r in routes if r.answer.data is not None}
    models: dict[type[BaseModel], str] = {**bodies, **answers, ErrorEnvelope: "serialization"}
    _, defs = models_json_schema(list(models.items()), ref_template=_REF)
    return defs.get("$defs", {})


def _operation(route: Route, page_size_max: int) -> dict[str, Any]:
    responses = {str(route.answer.status): _answer(route.answer, route.summary)}
    for status in route.errors:
        responses[str(status)] = _json(_error_ref(), _ERRORS[status])
    if route.secured or 429 in route.errors:  # an open route may be limited per address
        responses["429"] = _json(_error_ref(), _ERRORS[429]) | {"headers": _RATE_HEADERS}
    bad = responses.setdefault("400", {"description": _HTTP_400, "content": {}})
    if bad["description"] != _HTTP_400:
        bad["description"] += " " + _HTTP_400
    bad["content"]["text/plain"] = {"schema": {"type": "string"}}
    op: dict[str, Any] = {"summary": route.summary, "responses": responses}
    if route.body is not None:
        responses["413"] = _json(_error_ref(), _ERRORS[413])
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(route.body)}},
        }
    parameters = _parameters(route, page_size_max)
    if parameters:
        op["parameters"] = parameters
    if not route.secured:
        op["security"] = []
    if route.checks_code:
        busy_headers = {"Retry-After": _RATE_HEADERS["Retry-After"]}
        responses["503"] = _json(_error_ref(), _BUSY) | {"headers": busy_headers}
    return op


def _answer(answer: Answer, summary: str) -> dict[str, Any]:
    description = answer.description or summary
    if answer.schema is not None:
        return {
            "description": description,
            "content": {answer.media_type: {"schema": answer.schema}},
        }
    data = _ref(answer.data) if answer.data is not None else {"type": "null"}
    envelope = {
        "type": "object",
        "required": ["type", "success", "description", "data", "error"],
        "properties": {
            "type": {"const": "response"},
            "success": {"const": True},
            "description": {"type": "string"},
            "data": data,
            "error": {"type": "null"},
        },
    }
    return _json(envelope, description)


def _parameters(route: Route, page_size_max: int) -> list[dict[str, Any]]:
    params = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "description": _PATH_PARAMS[name],
            "schema": {"type": "string"},
        }
        for name in route.path_params
    ]
    if route.paged:
        limit = {"type": "integer", "minimum": 1, "maximum": page_size_max}
        params.append(_query("limit", limit, "Page size (default 50)."))
        cursor = "`data.next_cursor` of the previous page."
        params.append(_query("cursor", {"type": "string"}, cursor))
    if route.status_filter:
        status = {"enum": list(route.status_filter)}
        params.append(_query("status", status, "Only those with this status."))
    params += [
        _query(q.name, q.schema, q.description, empty_is_absent=q.empty_is_absent)
        for q in route.query
    ]
    return params


def _query(
    name: str, schema: dict[str, Any], description: str, *, empty_is_absent: bool = True
) -> dict[str, Any]:
    """An optional query parameter; sent empty (`?limit=`) it counts as left out, or, with
    `empty_is_absent=False`, is refused."""
    return {
        "name": name,
        "in": "query",
        "required": False,
        "allowEmptyValue": empty_is_absent,
        "description": description + (" Empty: as if left out." if empty_is_absent else ""),
        "schema": schema,
    }


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(model: type[BaseModel]) -> dict[str, Any]:
    return {"$ref": _REF.format(model=model.__name__)}


def _error_ref() -> dict[str, Any]:
    return _ref(ErrorEnvelope)
