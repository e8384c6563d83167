"""Webhooks as stored (WebhookRow) and as the HTTP API reads and answers them.

The pydantic models also feed /openapi.json: their docstrings and descriptions are its text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Literal
from uuid import UUID

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

from services.registry.bodies import (
    EVENTS_FIELD,
    EVENTS_SCHEMA,
    ROOM_ID_FIELD,
    EventName,
    StrictBody,
)
from services.registry.policy import (
    check_events,
    check_room_scope,
    check_schedule,
    check_webhook_url,
)
from services.registry.webhooks.custom_headers import MAX_HEADERS, check_headers
from shared.events import format_timestamp
from shared.signing import check_secret

# A page of 50 webhooks formats 100 timestamps, the same ones on every read: formatting them
# each time (a Python call from pydantic's serializer, ~4 us) was most of the page's
# serialization (576 -> 158 us for 50 in a microbenchmark, with this).
timestamp_text = lru_cache(maxsize=8192)(format_timestamp)

NAME_FIELD = Field(default=None, min_length=1, max_length=255, description="A label for humans.")
URL_SCHEMA = {"pattern": r"^[Hh][Tt][Tt][Pp][Ss]?://\S+$"}
RETRY_SCHEDULE_FIELD = Field(
    default=None,
    validation_alias=AliasChoices("retrySchedule", "retry_schedule"),
    description="Seconds to wait after each failed attempt (at most 10 delays, each 1 s to "
    "24 h); its length + 1 is the number of attempts. Null: the deployment's default "
    "(1, 5, 30).",
)
HEADERS_DESCRIPTION = (
    f"Headers sent with every request, `{{name: value}}`: at most {MAX_HEADERS}; names are "
    "RFC 9110 tokens, other than Host, Content-Length, Content-Type, Transfer-Encoding, "
    "Connection, User-Agent, Accept-Encoding, hop-by-hop names and any `webhook-*` or "
    "`X-Webhook-*`; values at most 1 KiB, without CR, LF, NUL or other control characters. "
    "Stored sealed; MEMBER keys see each value as `****`."
)
HEADERS_SCHEMA = {"maxProperties": MAX_HEADERS}
MAX_OVERLAP_S = 7 * 86_400
Ordering = Literal["none", "room"]
ORDERING_DESCRIPTION = (
    '"room": deliveries for one room are sent one at a time, in the order their events '
    "were published; a failing one holds the room's later ones until it succeeds or fails "
    "for good (other rooms and webhooks are never held; organization events are ordered per "
    'webhook; redeliveries, recoveries and test pings go outside the order). "none" (the '
    "default): each delivery is sent at once."
)
SEND_TRACEPARENT_DESCRIPTION = (
    "true: each request carries a W3C `traceparent` header naming the attempt's span, so a "
    "receiver that traces with OpenTelemetry continues the event's trace (sent while the "
    "operator has tracing on). false (the default): no such header."
)
URL_FIELD = Field(
    description="Absolute https URL (http only for hosts the operator allows), at most 2048 "
    "characters.",
    max_length=2048,
    json_schema_extra=URL_SCHEMA,
)


@dataclass(frozen=True)
class WebhookRow:
    id: UUID
    organization_id: UUID
    name: str | None
    url: str
    # `<key id>:<Fernet token>` (shared/secrets_box.py); None only on a row written before
    # secrets were sealed, until the registry's start-up seals it.
    secret_ciphertext: str | None
    events: list[str]
    room_id: str | None
    enabled: bool
    disabled_reason: str | None
    retry_schedule: list[int] | None
    revision: int
    created_at: datetime
    updated_at: datetime
    # A rotation's replaced secret, sealed, and when it stops signing (both or neither).
    previous_secret_ciphertext: str | None = None
    previous_secret_until: datetime | None = None
    # The custom headers as one sealed JSON object (shared/secrets_box.py); None: none.
    headers_ciphertext: str | None = None
    ordering: str = "none"
    send_traceparent: bool = False


@dataclass(frozen=True)
class EndedOverlap:
    """A webhook whose rotation's overlap ended at `ended_at`, its previous secret erased."""

    webhook_id: UUID
    organization_id: UUID
    ended_at: datetime


def _http_hosts(info: ValidationInfo) -> frozenset[str]:
    return (info.context or {}).get("http_hosts", frozenset())


class WebhookInput(StrictBody):
    """POST and PUT body: the whole webhook (PUT replaces every field)."""

    url: str = URL_FIELD
    events: list[EventName] = EVENTS_FIELD
    room_id: str | None = ROOM_ID_FIELD
    name: str | None = NAME_FIELD
    enabled: bool = True
    retry_schedule: list[int] | None = RETRY_SCHEDULE_FIELD
    headers: dict[str, str] = Field(
        default_factory=dict, description=HEADERS_DESCRIPTION, json_schema_extra=HEADERS_SCHEMA
    )
    ordering: Ordering = Field(default="none", description=ORDERING_DESCRIPTION)
    send_traceparent: bool = Field(
        default=False,
        validation_alias=AliasChoices("sendTraceparent", "send_traceparent"),
        description=SEND_TRACEPARENT_DESCRIPTION,
    )

    @field_validator("retry_schedule")
    @classmethod
    def _schedule(cls, value: list[int] | None) -> list[int] | None:
        return check_schedule(value)

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        return check_headers(value)

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


class WebhookCreateInput(WebhookInput):
    """POST body: the webhook, and optionally the secret it signs with (when migrating)."""

    secret: str | None = Field(
        default=None,
        description="The signing secret to keep, for receivers migrating from another "
        "platform: 64 lowercase hex characters, or a Standard Webhooks `whsec_<base64>` "
        "secret whose key is 24 to 64 bytes. Absent: a new one is made.",
    )

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        return check_secret(value) if value is not None else None


class WebhookPatch(StrictBody):
    """PATCH body: only the fields present change; `roomId: null` removes the room scope."""

    url: str | None = Field(default=None, max_length=2048, json_schema_extra=URL_SCHEMA)
    events: list[EventName] | None = Field(
        default=None, max_length=100, json_schema_extra=EVENTS_SCHEMA
    )
    room_id: str | None = ROOM_ID_FIELD
    name: str | None = NAME_FIELD
    enabled: bool | None = None
    retry_schedule: list[int] | None = RETRY_SCHEDULE_FIELD
    headers: dict[str, str] | None = Field(
        default=None,
        description=HEADERS_DESCRIPTION + " The map given replaces the stored one.",
        json_schema_extra=HEADERS_SCHEMA,
    )
    ordering: Ordering | None = Field(default=None, description=ORDERING_DESCRIPTION)
    send_traceparent: bool | None = Field(
        default=None,
        validation_alias=AliasChoices("sendTraceparent", "send_traceparent"),
        description=SEND_TRACEPARENT_DESCRIPTION,
    )

    @field_validator("ordering")
    @classmethod
    def _ordering(cls, value: str | None) -> str:
        if value is None:
            raise ValueError('must be "none" or "room" (null is not allowed)')
        return value

    @field_validator("send_traceparent")
    @classmethod
    def _send_traceparent(cls, value: bool | None) -> bool:
        if value is None:
            raise ValueError("must be a boolean (null is not allowed)")
        return value

    @field_validator("retry_schedule")
    @classmethod
    def _schedule(cls, value: list[int] | None) -> list[int] | None:
        return check_schedule(value)

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str] | None) -> dict[str, str]:
        if value is None:
            raise ValueError("must be an object (send {} to remove every header)")
        return check_headers(value)

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
                "at least one of url, events, roomId, name, enabled, retrySchedule, headers,"
                " ordering, sendTraceparent is required"
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
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Sent with every request; MEMBER keys see each value as `****`.",
    )
    ordering: Ordering = Field(default="none", description=ORDERING_DESCRIPTION)
    send_traceparent: bool = Field(default=False, description=SEND_TRACEPARENT_DESCRIPTION)
    previous_secret_expires_at: datetime | None = Field(
        default=None,
        description="When the secret the last rotation replaced stops signing (null: no "
        "rotation with an overlap; in the past: it no longer signs).",
    )
    created_at: datetime
    updated_at: datetime

    @field_serializer("created_at", "updated_at", when_used="json")
    def _timestamps(self, value: datetime) -> str:
        return timestamp_text(value)

    @field_serializer("previous_secret_expires_at", when_used="json")
    def _expiry(self, value: datetime | None) -> str | None:
        return format_timestamp(value) if value is not None else None


class WebhookWithSecret(Webhook):
    """`WebhookRegistration` of the CollabKit types: only ever in the answers to POST and
    to a rotation."""

    secret: str = Field(
        description="The signing secret (64 hex characters, or the `whsec_` secret given on "
        "create); shown once."
    )


class SecretRotation(StrictBody):
    """POST .../rotate-secret body (optional): how long the replaced secret still signs."""

    overlap_seconds: int = Field(
        default=86_400,
        ge=0,
        le=MAX_OVERLAP_S,
        validation_alias=AliasChoices("overlapSeconds", "overlap_seconds"),
        description="Seconds the replaced secret keeps signing beside the new one (0: it "
        f"stops at once; at most {MAX_OVERLAP_S:,}, 7 days).",
    )


class WebhookData(BaseModel):
    webhook: Webhook


class WebhookCreatedData(BaseModel):
    webhook: WebhookWithSecret


class WebhookListData(BaseModel):
    webhooks: list[Webhook]
    next_cursor: str | None
