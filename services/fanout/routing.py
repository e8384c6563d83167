"""What to do with one message of `<ns>.events`: pure decisions, no I/O.

`route` parses the event, matches it against the webhook and workflow indexes and returns the
delivery requests and workflow run requests to emit (the payload rendered once and shared by
both, and by the event log), or a `Rejected` naming why the bytes go to the DLQ. The adapter
(`processor.py`) turns these into Kafka records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from services.fanout.index import Subscriptions
from services.fanout.stamps import event_stamp
from shared.events import InvalidEvent, parse_event, render_payload
from shared.messages import (
    DeliveryRequested,
    EventPosition,
    WorkflowRunRequested,
    delivery_id_for,
    run_id_for,
)


@dataclass(frozen=True, slots=True)
class Routed:
    """A valid event, one delivery request per matching webhook and one run request per
    matching workflow (either possibly none); `body` is what a webhook receives."""

    event: str
    event_id: str
    organization_id: str
    room_id: str | None
    body: str
    requests: list[DeliveryRequested]
    runs: list[WorkflowRunRequested]
    stamp: datetime  # the requests' created_at and the event log's received_at (stamps.py)


@dataclass(frozen=True, slots=True)
class Rejected:
    """Bytes that will never be a valid event: they go to the DLQ with `reason`. `kind` is a
    short, bounded label for metrics (see `shared.events.InvalidEvent`; also `empty`,
    `unproducible`, `unroutable`)."""

    reason: str
    kind: str = "invalid_field"


def route(
    value: bytes | None,
    indexes: Subscriptions,
    *,
    record_stamp: datetime,
    oldest: datetime,
    position: EventPosition | None = None,
) -> Routed | Rejected:
    """Decide the output for one message value, read from a record stamped `record_stamp`
    at `position` in the events topic; `oldest` is the oldest stamp retention keeps
    (stamps.py). Every request carries the event's room and position; those to a webhook
    with `ordering: "room"` ask delivery to keep that order."""
    if value is None:
        return Rejected("value: null (a tombstone is not an event)", "empty")
    if not value:
        return Rejected("value: empty", "empty")
    try:
        event = parse_event(value)
    except InvalidEvent as exc:
        return Rejected(exc.reason, exc.kind)
    stamp = event_stamp(event.timestamp, record_stamp, oldest=oldest)
    where = (event.organization_id, event.event, event.room_id, event.scope)
    webhook_ids = indexes.webhooks.match(*where)
    workflow_ids = indexes.workflows.match(*where)
    body = render_payload(event).decode("utf-8")  # the event log keeps it, subscribers or not
    requests: list[DeliveryRequested] = []
    runs: list[WorkflowRunRequested] = []
    if webhook_ids:
        requests = [
            DeliveryRequested(
                delivery_id=delivery_id_for(webhook_id, event.id),
                webhook_id=webhook_id,
                organization_id=event.organization_id,
                event_id=event.id,
                event=event.event,
                body=body,
                created_at=stamp,
                room_id=event.room_id,
                position=position,
                ordering=_ordering(indexes, webhook_id, position),
            )
            for webhook_id in webhook_ids
        ]
    if workflow_ids:
        payload = json.loads(body)  # the same document webhooks receive, tokens stripped
        runs = [
            WorkflowRunRequested(
                run_id=run_id_for(workflow_id, event.id),
                workflow_id=workflow_id,
                version=_current_version(indexes, workflow_id),
                organization_id=event.organization_id,
                room_id=event.room_id,  # None for organization events: they carry no room
                event_id=event.id,
                event=payload,
                created_at=stamp,
            )
            for workflow_id in workflow_ids
        ]
    return Routed(
        event.event, event.id, event.organization_id, event.room_id, body, requests, runs, stamp
    )


def _ordering(
    indexes: Subscriptions, webhook_id: str, position: EventPosition | None
) -> Literal["none", "room"]:
    held = indexes.webhooks.get(webhook_id)
    return "room" if position is not None and held is not None and held.ordered else "none"


def _current_version(indexes: Subscriptions, workflow_id: str) -> int:
    held = indexes.workflows.get(workflow_id)
    if held is None or held.version is None:  # match() only returns held workflow records
        raise LookupError(f"workflow {workflow_id} matched but holds no version")
    return held.version
