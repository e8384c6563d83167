"""The OpenAPI 3.1 document of the registry, built from the same pydantic models the routes use."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from services.registry.models import (
    DeliveryData,
    DeliveryListData,
    DeliveryQueuedData,
    ErrorEnvelope,
    EventTypesData,
    ExecutionData,
    ExecutionListData,
    HealthData,
    WebhookCreatedData,
    WebhookData,
    WebhookInput,
    WebhookListData,
    WebhookPatch,
    WorkflowData,
    WorkflowInput,
    WorkflowListData,
    WorkflowPatch,
)

_REF = "#/components/schemas/{model}"

_ERRORS = {
    "400": "Invalid input: `error.details` names each field and what is wrong with it (JSON"
    " nested deeper than 64 levels, NUL or a lone surrogate in any text included).",
    "401": "Missing or invalid API key.",
    "403": "The key belongs to another account, or its role may not write.",
    "404": "No such webhook, workflow, delivery or execution in this account.",
    "409": "The account holds as many webhooks (or workflows) as its quota allows.",
    "413": "The body is larger than the server accepts.",
    "429": "Too many requests: with this key, from this address without a valid key, or"
    " (redeliver, test) to this webhook. `Retry-After` says when to try again.",
    "503": "Not ready: `error.message` names the failing checks.",
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


def _envelope(data_model: type[BaseModel] | None) -> dict[str, Any]:
    data = {"$ref": _REF.format(model=data_model.__name__)} if data_model else {"type": "null"}
    return {
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


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _add_http_400(responses: dict[str, Any]) -> dict[str, Any]:
    """Any operation may get the HTTP layer's plain-text 400 (beside the API's JSON one)."""
    bad = responses.setdefault("400", {"description": _HTTP_400, "content": {}})
    if bad["description"] != _HTTP_400:
        bad["description"] += " " + _HTTP_400
    bad["content"]["text/plain"] = {"schema": {"type": "string"}}
    return responses


def _error_ref() -> dict[str, Any]:
    return {"$ref": _REF.format(model="ErrorEnvelope")}


def _operation(
    summary: str,
    *,
    ok_status: str,
    ok_model: type[BaseModel] | None,
    errors: tuple[str, ...],
    body: type[BaseModel] | None = None,
    parameters: list[dict[str, Any]] | None = None,
    secured: bool = True,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {ok_status: _json(_envelope(ok_model), summary)},
    }
    for status in errors:
        op["responses"][status] = _json(_error_ref(), _ERRORS[status])
    if secured:
        op["responses"]["429"] = _json(_error_ref(), _ERRORS["429"]) | {"headers": _RATE_HEADERS}
    _add_http_400(op["responses"])
    if body is not None:
        op["responses"]["413"] = _json(_error_ref(), _ERRORS["413"])
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": _REF.format(model=body.__name__)}}},
        }
    if parameters:
        op["parameters"] = parameters
    if not secured:
        op["security"] = []
    return op


def _busy(op: dict[str, Any]) -> dict[str, Any]:
    """An operation that checks code on save: a full check queue answers 503."""
    op["responses"]["503"] = _json(_error_ref(), _BUSY) | {
        "headers": {"Retry-After": _RATE_HEADERS["Retry-After"]}
    }
    return op


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }


def _query_param(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    """An optional query parameter; sent empty (`?limit=`) it counts as left out."""
    return {
        "name": name,
        "in": "query",
        "required": False,
        "allowEmptyValue": True,
        "description": description + " Empty: as if left out.",
        "schema": schema,
    }


def build_openapi(*, version: str, page_size_max: int) -> dict[str, Any]:
    models: list[type[BaseModel]] = [
        WorkflowInput,
        WorkflowPatch,
        WorkflowData,
        WorkflowListData,
        ExecutionData,
        ExecutionListData,
        DeliveryData,
        DeliveryListData,
        DeliveryQueuedData,
        WebhookInput,
        WebhookPatch,
        WebhookData,
        WebhookCreatedData,
        WebhookListData,
        EventTypesData,
        HealthData,
        ErrorEnvelope,
    ]
    _, defs = models_json_schema(
        [
            (
                m,
                "validation"
                if m in (WebhookInput, WebhookPatch, WorkflowInput, WorkflowPatch)
                else "serialization",
            )
            for m in models
        ],
        ref_template=_REF,
    )
    schemas = defs.get("$defs", {})
    account = _path_param("account_id", "The account (organization) id.")
    webhook = _path_param("webhook_id", "The webhook id.")
    delivery = _path_param("delivery_id", "The delivery id.")
    workflow = _path_param("workflow_id", "The workflow id.")
    execution = _path_param("execution_id", "The execution id.")
    list_params = [
        account,
        _query_param(
            "limit",
            {"type": "integer", "minimum": 1, "maximum": page_size_max},
            "Page size (default 50).",
        ),
        _query_param("cursor", {"type": "string"}, "`data.next_cursor` of the previous page."),
    ]
    all_errors = ("400", "401", "403", "404")
    webhooks_path = "/v1/accounts/{account_id}/webhooks"
    workflows_path = "/v1/accounts/{account_id}/workflows"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "roomhooks registry",
            "version": version,
            "description": "Webhooks for collaboration-room and organization events.",
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"apiKey": []}],
        "paths": {
            webhooks_path: {
                "post": _operation(
                    "Create a webhook; the answer carries its secret, once.",
                    ok_status="201",
                    ok_model=WebhookCreatedData,
                    errors=(*all_errors, "409"),
                    body=WebhookInput,
                    parameters=[account],
                ),
                "get": _operation(
                    "List the account's webhooks, newest first.",
                    ok_status="200",
                    ok_model=WebhookListData,
                    errors=all_errors,
                    parameters=list_params,
                ),
            },
            webhooks_path + "/{webhook_id}": {
                "get": _operation(
                    "Get a webhook.",
                    ok_status="200",
                    ok_model=WebhookData,
                    errors=all_errors,
                    parameters=[account, webhook],
                ),
                "put": _operation(
                    "Replace a webhook: every field takes the body's value or its default.",
                    ok_status="200",
                    ok_model=WebhookData,
                    errors=all_errors,
                    body=WebhookInput,
                    parameters=[account, webhook],
                ),
                "patch": _operation(
                    "Change some fields of a webhook.",
                    ok_status="200",
                    ok_model=WebhookData,
                    errors=all_errors,
                    body=WebhookPatch,
                    parameters=[account, webhook],
                ),
                "delete": _operation(
                    "Delete a webhook; the answer is its last state.",
                    ok_status="200",
                    ok_model=WebhookData,
                    errors=all_errors,
                    parameters=[account, webhook],
                ),
            },
            webhooks_path + "/{webhook_id}/deliveries": {
                "get": _operation(
                    "The webhook's delivery log, newest first.",
                    ok_status="200",
                    ok_model=DeliveryListData,
                    errors=all_errors,
                    parameters=[
                        *list_params,
                        webhook,
                        _query_param(
                            "status",
                            {"enum": ["pending", "success", "failed"]},
                            "Only those with this status.",
                        ),
                    ],
                )
            },
            webhooks_path + "/{webhook_id}/deliveries/{delivery_id}": {
                "get": _operation(
                    "One delivery with every attempt made.",
                    ok_status="200",
                    ok_model=DeliveryData,
                    errors=all_errors,
                    parameters=[account, webhook, delivery],
                )
            },
            webhooks_path + "/{webhook_id}/deliveries/{delivery_id}/redeliver": {
                "post": _operation(
                    "Attempt the delivery again now, even after it failed.",
                    ok_status="202",
                    ok_model=DeliveryQueuedData,
                    errors=all_errors,
                    parameters=[account, webhook, delivery],
                )
            },
            webhooks_path + "/{webhook_id}/test": {
                "post": _operation(
                    "Send a `webhook.test` ping through the delivery path.",
                    ok_status="202",
                    ok_model=DeliveryQueuedData,
                    errors=all_errors,
                    parameters=[account, webhook],
                )
            },
            workflows_path: {
                "post": _busy(
                    _operation(
                        "Create a workflow; its code is checked on save.",
                        ok_status="201",
                        ok_model=WorkflowData,
                        errors=(*all_errors, "409"),
                        body=WorkflowInput,
                        parameters=[account],
                    )
                ),
                "get": _operation(
                    "List the account's workflows, newest first.",
                    ok_status="200",
                    ok_model=WorkflowListData,
                    errors=all_errors,
                    parameters=list_params,
                ),
            },
            workflows_path + "/{workflow_id}": {
                "get": _operation(
                    "Get a workflow with its current code.",
                    ok_status="200",
                    ok_model=WorkflowData,
                    errors=all_errors,
                    parameters=[account, workflow],
                ),
                "patch": _busy(
                    _operation(
                        "Change some fields; new code or language is a new version.",
                        ok_status="200",
                        ok_model=WorkflowData,
                        errors=all_errors,
                        body=WorkflowPatch,
                        parameters=[account, workflow],
                    )
                ),
                "delete": _operation(
                    "Delete a workflow; the answer is its last state.",
                    ok_status="200",
                    ok_model=WorkflowData,
                    errors=all_errors,
                    parameters=[account, workflow],
                ),
            },
            workflows_path + "/{workflow_id}/executions": {
                "get": _operation(
                    "The workflow's executions, newest first.",
                    ok_status="200",
                    ok_model=ExecutionListData,
                    errors=all_errors,
                    parameters=[
                        *list_params,
                        workflow,
                        _query_param(
                            "status",
                            {"enum": ["running", "success", "error", "timeout"]},
                            "Only those with this status.",
                        ),
                    ],
                )
            },
            workflows_path + "/{workflow_id}/executions/{execution_id}": {
                "get": _operation(
                    "One execution: status, result, error and logs.",
                    ok_status="200",
                    ok_model=ExecutionData,
                    errors=all_errors,
                    parameters=[account, workflow, execution],
                )
            },
            "/v1/event-types": {
                "get": _operation(
                    "The event catalog.",
                    ok_status="200",
                    ok_model=EventTypesData,
                    errors=(),
                    secured=False,
                )
            },
            "/healthz": {
                "get": _operation(
                    "Liveness.", ok_status="200", ok_model=HealthData, errors=(), secured=False
                )
            },
            "/readyz": {
                "get": _operation(
                    "Readiness: Postgres answers and the outbox relay is healthy.",
                    ok_status="200",
                    ok_model=HealthData,
                    errors=("503",),
                    secured=False,
                )
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics.",
                    "security": [],
                    "responses": _add_http_400(
                        {
                            "200": {
                                "description": "Prometheus text exposition format.",
                                "content": {"text/plain": {"schema": {"type": "string"}}},
                            }
                        }
                    ),
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document.",
                    "security": [],
                    "responses": _add_http_400(
                        {"200": _json({"type": "object"}, "The OpenAPI 3.1 document.")}
                    ),
                }
            },
        },
    }
