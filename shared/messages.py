"""The messages services send each other, beside the inbound events (`shared.events`).

Facts on `roomhooks.registry` (`WebhookRecord`, `WorkflowRecord`), orders on
`roomhooks.deliveries`, `roomhooks.workflow-runs` and `roomhooks.registry.commands`. Every
topic is at-least-once: each model says what makes reading it twice harmless. `python -m
devtool.asyncapi` publishes these docstrings in docs/asyncapi.json.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from shared.failures import unstorable_at
from shared.name_based_ids import uuid5_text

# A UUID in canonical text form. Consumers parse these ids when they store a message, so a
# malformed one must fail validation where the message is read (and be skipped there as
# invalid), never later, where it would fail its whole batch again on every retry.
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
UuidText = Annotated[str, StringConstraints(pattern=UUID_PATTERN)]


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
    """`WebhookRegistered`: the current public state of one webhook (never its secret).

    `roomhooks.registry` (compacted), key `webhook:<id>`; a null value means deleted. Written
    by the registry on every change; read by fanout (routing) and delivery (its targets
    cache). A consumer drops a record whose `revision` is lower than one it holds, so a
    replay is harmless.
    """

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
    # "room": its deliveries go one at a time per room, in publish order (fanout marks
    # them); "none": no order (a record from before the field has none).
    ordering: Literal["none", "room"] = "none"
    revision: int
    created_at: datetime
    updated_at: datetime


class EventPosition(BaseModel):
    """Where an event was read in `roomhooks.events`: its partition and offset. A room's
    events share a partition (the room is the key), so their offsets are their publish order."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    partition: int = Field(ge=0, le=2**31 - 1)
    offset: int = Field(ge=0, le=2**63 - 1)


class DeliveryRequested(BaseModel):
    """An order: deliver `body` to one webhook, retrying on its schedule.

    `roomhooks.deliveries`, key = webhook id. Written by fanout (and by the registry for test
    pings); read by delivery, which stores it idempotently on its id: `delivery_id` must be
    UUIDv5(webhook id, event id) (`delivery_id_for`; any other is refused), so a re-read event
    makes no second delivery.
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
    # The event's room (None: an organization event, or a test ping) and its position in
    # `roomhooks.events` (None: not from that topic). With `ordering: "room"` (fanout sets it
    # for a webhook that asks for it) the position is required: delivery sends one delivery
    # of the (webhook, room) at a time, lowest position first; "none" sends at once.
    room_id: str | None = None
    position: EventPosition | None = None
    ordering: Literal["none", "room"] = "none"

    @model_validator(mode="after")
    def _ordered_needs_position(self) -> DeliveryRequested:
        if self.ordering == "room" and self.position is None:
            raise ValueError("position: required when ordering is room")
        return self

    @model_validator(mode="after")
    def _id_names_webhook_and_event(self) -> DeliveryRequested:
        # The one key delivery stores a request under: another id for the same webhook and
        # event would make a second delivery of it.
        if self.delivery_id.lower() != delivery_id_for(self.webhook_id, self.event_id):
            raise ValueError("delivery_id: not UUIDv5(webhook_id, event_id)")
        return self

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
    """An order: attempt one stored delivery again now, even after it failed.

    `roomhooks.deliveries`, key = webhook id. Written by the registry (POST .../redeliver);
    read by delivery. A re-read order makes the delivery due again, so its receiver may get
    one more attempt under the same `delivery_id`; an order for no stored delivery does nothing.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["redeliver"] = "redeliver"
    delivery_id: UuidText
    webhook_id: UuidText
    organization_id: UuidText
    requested_at: datetime


class RecoverRequested(BaseModel):
    """An order: send again every `failed` delivery of one webhook created in [since, until).

    `roomhooks.deliveries`, key = webhook id. Written by the registry (POST .../recover, with
    the job in `registry.jobs`); read by delivery, which stores the job on `job_id` and runs it
    from Postgres, so a re-read order starts nothing twice.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["recover"] = "recover"
    job_id: UuidText
    webhook_id: UuidText
    organization_id: UuidText
    since: datetime
    until: datetime
    requested_at: datetime


def delivery_id_for(webhook_id: str, event_id: str) -> str:
    """UUIDv5 in the webhook's namespace: the same event never makes two deliveries."""
    return uuid5_text(webhook_id, event_id)


class DisableWebhook(BaseModel):
    """An order to the registry, which owns webhooks: disable this one.

    `roomhooks.registry.commands`, key = webhook id. Written by delivery when an endpoint
    answers 410 Gone; read by the registry. Idempotent: disabling a disabled webhook changes
    nothing, and an unknown webhook is skipped.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["disable_webhook"] = "disable_webhook"
    webhook_id: str
    organization_id: str
    reason: str
    requested_at: datetime


class WorkflowRecord(BaseModel):
    """`WorkflowRegistered`: the current public state of one workflow (not its code).

    `roomhooks.registry` (compacted), key `workflow:<id>`; a null value means deleted.
    Written by the registry; read by fanout, which requests runs of the current `version`
    (the runner reads the code from Postgres by id and version). A consumer drops a record
    whose `revision` is lower than one it holds.
    """

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
    """An order: run one workflow version on one event.

    `roomhooks.workflow-runs`, key = workflow id. Written by fanout; read by the workflow
    runner, which stores the execution idempotently on `run_id` = UUIDv5(workflow id, event
    id), so a re-read event runs once.
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
    return uuid5_text(workflow_id, event_id)
