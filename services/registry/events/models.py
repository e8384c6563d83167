"""The event log as fanout stores it (rows, read only here) and as the HTTP API answers it.

The pydantic models also feed /openapi.json: their docstrings and descriptions are its text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field, field_serializer

from shared.events import format_timestamp

STATUSES = ("accepted", "rejected")


@dataclass(frozen=True)
class EventRow:
    """One row of `events.events`; `payload` is None in pages (they do not read bodies)."""

    id: UUID
    event_id: str | None
    event: str | None
    room_id: str | None
    status: str
    reason: str | None
    payload: str | None
    webhook_ids: list[UUID]
    workflow_ids: list[UUID]
    received_at: datetime


@dataclass(frozen=True)
class EventFilters:
    """What a page of the log is narrowed to; None: not narrowed. `since` is inclusive,
    `until` exclusive, both on `received_at`."""

    event: str | None = None
    room_id: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class LoggedEvent(BaseModel):
    """An event fanout read for the account: accepted (routed, with or without subscribers) or
    rejected at ingress (sent to the DLQ) with the reason."""

    organization_id: str = Field(description="The account (organization) it belongs to.")
    id: str | None = Field(
        description="The event's id as its producer sent it; null when unreadable."
    )
    event: str | None = Field(description="The event's name; null when unreadable.")
    room_id: str | None
    status: Literal["accepted", "rejected"]
    reason: str | None = Field(description="Why the event was rejected; null when accepted.")
    webhooks: int = Field(description="How many webhooks it reached.")
    workflows: int = Field(description="How many workflows it reached.")
    received_at: datetime

    @field_serializer("received_at", when_used="json")
    def _timestamps(self, value: datetime) -> str:
        return format_timestamp(value)


class ReachedWebhook(BaseModel):
    """One webhook the event reached and its delivery (the webhook may since be deleted)."""

    webhook_id: str
    delivery_id: str
    status: str | None = Field(
        description="The delivery's status; null until the delivery service has stored it."
    )


class ReachedWorkflow(BaseModel):
    """One workflow the event reached and its execution."""

    workflow_id: str
    execution_id: str
    status: str | None = Field(
        description="The execution's status; null until the workflow runner has recorded it."
    )


class EventListData(BaseModel):
    events: list[LoggedEvent]
    next_cursor: str | None


class EventData(BaseModel):
    event: LoggedEvent
    payload: str | None = Field(
        description="The JSON body webhooks receive for it, byte for byte (tokens stripped);"
        " null for a rejected event (the DLQ keeps its bytes)."
    )
    webhooks: list[ReachedWebhook]
    workflows: list[ReachedWorkflow]
