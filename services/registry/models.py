"""The registry's HTTP contract: request bodies, public records and the response envelope.

Request bodies are strict (`extra="forbid"`, no type coercion) so a typo is a 400 that names
the field instead of a silently ignored setting. These models also feed /openapi.json.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)

from services.registry.policy import (
    check_events,
    check_room_scope,
    check_schedule,
    check_storable_text,
    check_webhook_url,
)
from shared.events import CATALOG, format_timestamp

ROOM_ID_FIELD = Field(
    default=None,
    min_length=1,
    max_length=200,
    validation_alias=AliasChoices("roomId", "room_id"),
    description="Scope the webhook to one room; null or absent: every room.",
)
NAME_FIELD = Field(default=None, min_length=1, max_length=255, description="A label for humans.")
# What the validators accept, also said in /openapi.json so clients (and the fuzzer) can see it;
# the validators still decide, with messages that name what is wrong.
EVENTS_SCHEMA = {"minItems": 1, "uniqueItems": True}
EventName = Annotated[str, Field(json_schema_extra={"enum": sorted(CATALOG)})]
URL_SCHEMA = {"pattern": r"^[Hh][Tt][Tt][Pp][Ss]?://\S+$"}
EVENTS_FIELD = Field(
    description="Event names to subscribe to (GET /v1/event-types); at least one.",
    max_length=100,
    json_schema_extra=EVENTS_SCHEMA,
)
RETRY_SCHEDULE_FIELD = Field(
    default=None,
    validation_alias=AliasChoices("retrySchedule", "retry_schedule"),
    description="Seconds to wait after each failed attempt (at most 10 delays, each 1 s to "
    "24 h); its length + 1 is the number of attempts. Null: the deployment's default "
    "(1, 5, 30).",
)
URL_FIELD = Field(
    description="Absolute https URL (http only for hosts the operator allows), at most 2048 "
    "characters.",
    max_length=2048,
    json_schema_extra=URL_SCHEMA,
)


def _http_hosts(info: ValidationInfo) -> frozenset[str]:
    return (info.context or {}).get("http_hosts", frozenset())


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @field_validator("*")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        return check_storable_text(value)


class WebhookInput(_Body):
    """POST and PUT body: the whole webhook (PUT replaces every field)."""

    url: str = URL_FIELD
    events: list[EventName] = EVENTS_FIELD
    room_id: str | None = ROOM_ID_FIELD
    name: str | None = NAME_FIELD
    enabled: bool = True
    retry_schedule: list[int] | None = RETRY_SCHEDULE_FIELD

    @field_validator("retry_schedule")
    @classmethod
    def _schedule(cls, value: list[int] | None) -> list[int] | None:
        return check_schedule(value)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str, info: ValidationInfo) -> str:
        return check_webhook_url(value, http_hosts=_http_hosts(info))

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str]) -> list[str]:
        return check_events(value)

    @model_validator(mode="after")
    def _scope(self) -> WebhookInput:
        check_room_scope(self.events, room_id=self.room_id)
        return self


class WebhookPatch(_Body):
    """PATCH body: only the fields present change; `roomId: null` removes the room scope."""

    url: str | None = Field(default=None, max_length=2048, json_schema_extra=URL_SCHEMA)
    events: list[EventName] | None = Field(
        default=None, max_length=100, json_schema_extra=EVENTS_SCHEMA
    )
    room_id: str | None = ROOM_ID_FIELD
    name: str | None = NAME_FIELD
    enabled: bool | None = None
    retry_schedule: list[int] | None = RETRY_SCHEDULE_FIELD

    @field_validator("retry_schedule")
    @classmethod
    def _schedule(cls, value: list[int] | None) -> list[int] | None:
        return check_schedule(value)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            raise ValueError("must be a string (null is not allowed)")
        return check_webhook_url(value, http_hosts=_http_hosts(info))

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str] | None) -> list[str]:
        if value is None:
            raise ValueError("must not be null")
        return check_events(value)

    @field_validator("enabled")
    @classmethod
    def _enabled(cls, value: bool | None) -> bool:
        if value is None:
            raise ValueError("must not be null")
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> WebhookPatch:
        if not self.model_fields_set:
            raise ValueError(
                "at least one of url, events, roomId, name, enabled, retrySchedule is required"
            )
        return self


class Webhook(BaseModel):
    """`WebhookRegistrationPublic` of the CollabKit types: everything but the secret."""

    model_config = ConfigDict(frozen=True)

    id: str
    organization_id: str
    name: str | None
    url: str
    events: list[str]
    room_id: str | None
    enabled: bool
    disabled_reason: str | None = None
    retry_schedule: list[int] | None = None
    created_at: datetime
    updated_at: datetime

    @field_serializer("created_at", "updated_at", when_used="json")
    def _timestamps(self, value: datetime) -> str:
        return format_timestamp(value)


class WebhookWithSecret(Webhook):
    """`WebhookRegistration` of the CollabKit types: only ever in the 201 answer to POST."""

    secret: str = Field(description="64 hex characters; shown once.")


class ErrorDetail(BaseModel):
    field: str
    message: str


class ErrorInfo(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail] = Field(description="Each field at fault; empty when none is.")


class EventTypeInfo(BaseModel):
    name: str
    scope: Literal["room", "organization"]
    description: str


class WebhookData(BaseModel):
    webhook: Webhook


class WebhookCreatedData(BaseModel):
    webhook: WebhookWithSecret


class WebhookListData(BaseModel):
    webhooks: list[Webhook]
    next_cursor: str | None


class EventTypesData(BaseModel):
    event_types: list[EventTypeInfo]


class HealthData(BaseModel):
    status: str
    checks: dict[str, str] | None = None


class SuccessEnvelope(BaseModel):
    type: Literal["response"] = "response"
    success: Literal[True] = True
    description: str
    data: dict[str, Any]
    error: None = None


class ErrorEnvelope(BaseModel):
    type: Literal["response"] = "response"
    success: Literal[False] = False
    description: str
    data: None = None
    error: ErrorInfo


class WebhookDelivery(BaseModel):
    """`WebhookDelivery` of the CollabKit types, plus what the log needs to explain itself."""

    id: str
    webhook_id: str
    event_id: str
    event: str
    payload: str = Field(description="The JSON body sent, byte for byte.")
    status: Literal["pending", "success", "failed"]
    attempts: int
    last_attempt_at: datetime | None
    next_retry_at: datetime | None
    status_code: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime

    @field_serializer(
        "last_attempt_at", "next_retry_at", "created_at", "updated_at", when_used="json"
    )
    def _timestamps(self, value: datetime | None) -> str | None:
        return format_timestamp(value) if value is not None else None


class DeliveryAttempt(BaseModel):
    attempt: int
    started_at: datetime
    duration_ms: int
    status_code: int | None
    error: str | None
    response_body: str | None = Field(description="The first 4 KiB of the answer.")

    @field_serializer("started_at", when_used="json")
    def _timestamps(self, value: datetime) -> str:
        return format_timestamp(value)


class DeliveryListData(BaseModel):
    deliveries: list[WebhookDelivery]
    next_cursor: str | None


class DeliveryData(BaseModel):
    delivery: WebhookDelivery
    attempts: list[DeliveryAttempt]


class DeliveryQueuedData(BaseModel):
    delivery_id: str
    event_id: str | None = None


DEFAULT_CODE_MAX_BYTES = 256 * 1024
CODE_DESCRIPTION = (
    "An ES module whose default export is `async function(event, bindings)`; at most the "
    "deployment's code size (256 KiB of UTF-8 by default)."
)


def _check_code_size(code: str, info: ValidationInfo) -> str:
    limit = (info.context or {}).get("code_max_bytes", DEFAULT_CODE_MAX_BYTES)
    size = len(code.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise ValueError(f"must be at most {limit:,} bytes of UTF-8 (it is {size:,})")
    return code


class WorkflowInput(_Body):
    """POST body: a workflow as the CollabKit webhooks guide creates it."""

    name: str = Field(min_length=1, max_length=255)
    events: list[EventName] = EVENTS_FIELD
    code: str = Field(min_length=1, description=CODE_DESCRIPTION)
    language: Literal["js", "ts"] = "js"
    room_id: str | None = ROOM_ID_FIELD
    enabled: bool = True

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str]) -> list[str]:
        return check_events(value)

    @field_validator("code")
    @classmethod
    def _code(cls, value: str, info: ValidationInfo) -> str:
        return _check_code_size(value, info)

    @model_validator(mode="after")
    def _scope(self) -> WorkflowInput:
        check_room_scope(self.events, room_id=self.room_id)
        return self


class WorkflowPatch(_Body):
    """PATCH body: only the fields present change; a new `code` or `language` is a new version."""

    name: str | None = Field(default=None, min_length=1, max_length=255)
    events: list[EventName] | None = Field(
        default=None, max_length=100, json_schema_extra=EVENTS_SCHEMA
    )
    code: str | None = Field(default=None, min_length=1, description=CODE_DESCRIPTION)
    language: Literal["js", "ts"] | None = None
    room_id: str | None = ROOM_ID_FIELD
    enabled: bool | None = None

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str] | None) -> list[str]:
        if value is None:
            raise ValueError("must not be null")
        return check_events(value)

    @field_validator("name", "code", "language", "enabled")
    @classmethod
    def _not_null(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            raise ValueError("must not be null")
        if info.field_name == "code":
            return _check_code_size(value, info)
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> WorkflowPatch:
        if not self.model_fields_set:
            raise ValueError(
                "at least one of name, events, code, language, roomId, enabled is required"
            )
        return self


class Workflow(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    organization_id: str
    name: str
    events: list[str]
    room_id: str | None
    enabled: bool
    language: Literal["js", "ts"]
    version: int
    code: str
    created_at: datetime
    updated_at: datetime

    @field_serializer("created_at", "updated_at", when_used="json")
    def _timestamps(self, value: datetime) -> str:
        return format_timestamp(value)


class Execution(BaseModel):
    id: str
    workflow_id: str
    version: int
    event_id: str
    event: str
    status: Literal["running", "success", "error", "timeout"]
    started_at: datetime | None
    duration_ms: int | None
    result: Any = None
    error: dict[str, Any] | None
    logs: list[dict[str, Any]]
    created_at: datetime

    @field_serializer("started_at", "created_at", when_used="json")
    def _timestamps(self, value: datetime | None) -> str | None:
        return format_timestamp(value) if value is not None else None


class WorkflowData(BaseModel):
    workflow: Workflow


class WorkflowListData(BaseModel):
    workflows: list[Workflow]
    next_cursor: str | None


class ExecutionData(BaseModel):
    execution: Execution


class ExecutionListData(BaseModel):
    executions: list[Execution]
    next_cursor: str | None
