"""The delivery log as the delivery service stores it (rows, read only here) and as the HTTP
API answers it.

The pydantic models also feed /openapi.json: their docstrings and descriptions are its text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field, field_serializer

from shared.events import format_timestamp

STATUSES = ("pending", "success", "failed")


@dataclass(frozen=True)
class DeliveryRow:
    id: UUID
    webhook_id: UUID
    event_id: str
    event: str
    payload: str
    status: str
    attempts: int
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    status_code: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class AttemptRow:
    attempt: int
    started_at: datetime
    duration_ms: int
    status_code: int | None
    error: str | None
    response_body: str | None
    request_headers: dict[str, str] | None = None


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
    request_headers: dict[str, str] | None = Field(
        description="The headers roomhooks set on the request, as sent (the HTTP client adds"
        " Host and Content-Length), except that `webhook-signature` keeps only each"
        " signature's scheme (`v1,****`), `X-Webhook-Signature` and `X-Webhook-Signature-Next`"
        " are `****`, and so is the value of each of the webhook's own headers. Null for an"
        " attempt recorded before they were kept, or one that sent no request."
    )

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
