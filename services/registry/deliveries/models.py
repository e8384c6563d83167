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
