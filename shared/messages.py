"""Messages other services read from `roomhooks.registry`.

The registry publishes the public record of every webhook under key `webhook:<id>` (no
secret), and a tombstone (null value) when it is deleted. The topic is compacted: the last
record per key is the truth. Consumers are at-least-once and must drop a record whose
`revision` is lower than one they already hold.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from shared.failures import unstorable_at

# A UUID in canonical text form. Consumers parse these ids when they store a message, so a
# malformed one must fail validation where the message is read (and be skipped there as
# invalid), never later, where it would fail its whole batch again on every retry.
UuidText = Annotated[
    str,
    StringConstraints(
        pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    ),
]


def _storable_id(value: str) -> str:
    at = unstorable_at(value)
    if at is not None:
        raise ValueError(f"holds U+{ord(value[at]):04X} at index {at}, which Postgres text refuses")
    return value


# An id stored as Postgres text: no NUL or lone surrogate (text refuses them), bounded.
StorableId = Annotated[
    str, StringConstraints(min_length=1, max_length=200), AfterValidator(_storable_id)
]


def registry_key(kind: Literal["webhook", "workflow"], record_id: str) -> str:
    return f"{kind}:{record_id}"


def parse_registry_key(key: str) -> tuple[str, str]:
    kind, _, record_id = key.partition(":")
    if not record_id:
        raise ValueError(f"not a registry key: {key!r}")
    return kind, record_id


class WebhookRecord(BaseModel):
    """`WebhookRegistered`: the current public state of one webhook."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    kind: Literal["webhook"] = "webhook"
    id: str
    organization_id: str
    name: str | None
    url: str
    events: list[str]
    room_id: str | None
    enabled: bool
    disabled_reason: str | None = None
    revision: int
    created_at: datetime
    updated_at: datetime


class DeliveryRequested(BaseModel):
    """`roomhooks.deliveries`, key = webhook id: deliver `body` to one webhook.

    Written by fanout (and by the registry for test pings). At-least-once: the delivery
    service stores it idempotently on (webhook_id, event_id); `delivery_id` is
    UUIDv5(webhook id, event id), so a re-read event makes no second delivery.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["deliver"] = "deliver"
    delivery_id: UuidText
    webhook_id: UuidText
    organization_id: UuidText
    event_id: str
    event: str
    body: str  # the rendered payload, sent byte for byte on every attempt
    created_at: datetime

    @field_validator("event_id", "event", "body")
    @classmethod
    def _storable(cls, value: str) -> str:
        # Stored in Postgres text, which takes no NUL and no lone surrogate: refused here, so
        # the request goes to the dead letters with this reason instead of failing its batch.
        at = unstorable_at(value)
        if at is not None:
            raise ValueError(f"holds U+{ord(value[at]):04X} at index {at}, which cannot be stored")
        return value


class RedeliverRequested(BaseModel):
    """`roomhooks.deliveries`, key = webhook id: make a new attempt of a stored delivery now,
    even after it failed. Written by the registry (POST .../redeliver)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["redeliver"] = "redeliver"
    delivery_id: UuidText
    webhook_id: UuidText
    organization_id: UuidText
    requested_at: datetime


def delivery_id_for(webhook_id: str, event_id: str) -> str:
    """UUIDv5 in the webhook's namespace: the same event never makes two deliveries."""
    return str(uuid.uuid5(uuid.UUID(webhook_id), event_id))


class DisableWebhook(BaseModel):
    """`roomhooks.registry.commands`, key = webhook id: an order to the registry, which owns
    webhooks, to disable one (the delivery service sends it when an endpoint answers 410)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["disable_webhook"] = "disable_webhook"
    webhook_id: str
    organization_id: str
    reason: str
    requested_at: datetime


class WorkflowRecord(BaseModel):
    """`WorkflowRegistered`: the current public state of one workflow, under key
    `workflow:<id>` on `roomhooks.registry` (null value = deleted). The code itself is not
    on the topic: the runner reads it from Postgres by (id, version)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    kind: Literal["workflow"] = "workflow"
    id: str
    organization_id: str
    name: str
    events: list[str]
    room_id: str | None
    enabled: bool
    language: Literal["js", "ts"]
    version: int
    revision: int
    created_at: datetime
    updated_at: datetime


class WorkflowRunRequested(BaseModel):
    """`roomhooks.workflow-runs`, key = workflow id: run one workflow version on one event.

    Written by fanout. At-least-once: the runner stores the execution idempotently on
    `run_id` = UUIDv5(workflow id, event id), so a re-read event runs once.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    # The ids the runner stores the execution under: a request whose ids Postgres could not
    # take (not UUIDs, a NUL or lone surrogate in the event id) fails here and goes to the
    # DLQ, rather than failing its run on every try.
    run_id: UuidText
    workflow_id: UuidText
    version: int = Field(ge=1, le=2**31 - 1)
    organization_id: UuidText
    room_id: str | None  # the event's room: the bindings' scope (None: organization event)
    event_id: StorableId
    event: dict  # the rendered payload, as webhooks receive it (tokens stripped)
    created_at: datetime


def run_id_for(workflow_id: str, event_id: str) -> str:
    """UUIDv5 in the workflow's namespace: the same event never runs a workflow twice."""
    return str(uuid.uuid5(uuid.UUID(workflow_id), event_id))
