"""What to do with one message of `<ns>.events`: pure decisions, no I/O.

`route` parses the event, matches it against the webhook and workflow indexes and returns the
delivery requests and workflow run requests to emit (the payload rendered once and shared by
both, and by the event log), or a `Rejected` naming why the bytes go to the DLQ. The adapter
(`processor.py`) turns these into Kafka records; `request_values` writes the delivery
requests' record values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, NamedTuple

from pydantic_core import to_json

from services.fanout.index import Subscriptions
from services.fanout.stamps import event_stamp
from shared.events import InvalidEvent, parse_event, render_payload
from shared.messages import (
    UUID_PATTERN,
    DeliveryRequested,
    EventPosition,
    WorkflowRunRequested,
    delivery_id_for,
    run_id_for,
)


class Addressed(NamedTuple):
    """One matching webhook's delivery of a routed event: what its request holds beyond what
    every request of the event shares."""

    webhook_id: str
    delivery_id: str
    ordering: Literal["none", "room"]


class Routed(NamedTuple):
    """A valid event, one delivery request per matching webhook and one run request per
    matching workflow (either possibly none); `body` is what a webhook receives. (A tuple:
    one is made per event, in a quarter of a frozen dataclass's time.)"""

    event: str
    event_id: str
    organization_id: str
    room_id: str | None
    body: str
    requests: list[Addressed]
    runs: list[WorkflowRunRequested]
    stamp: datetime  # the requests' created_at and the event log's received_at (stamps.py)
    position: EventPosition | None = None  # where the event was read (every request says)

    def delivery_requests(self) -> list[DeliveryRequested]:
        """The delivery requests as their model (validated): what `request_values` writes."""
        return [
            DeliveryRequested(
                delivery_id=r.delivery_id,
                webhook_id=r.webhook_id,
                organization_id=self.organization_id,
                event_id=self.event_id,
                event=self.event,
                body=self.body,
                created_at=self.stamp,
                room_id=self.room_id,
                position=self.position,
                ordering=r.ordering,
            )
            for r in self.requests
        ]


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
    requests = [
        Addressed(
            webhook_id,
            delivery_id_for(webhook_id, event.id),
            _ordering(indexes, webhook_id, position),
        )
        for webhook_id in webhook_ids
    ]
    runs: list[WorkflowRunRequested] = []
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
    routed = Routed(
        event.event,
        event.id,
        event.organization_id,
        event.room_id,
        body,
        requests,
        runs,
        stamp,
        position,
    )
    if requests and not _uuids(event.organization_id, webhook_ids):
        routed.delivery_requests()  # the model refuses them, naming the field
    return routed


def request_values(routed: Routed) -> list[tuple[str, bytes]]:
    """Each delivery request's record key (its webhook's id) and value: the bytes
    `DeliveryRequested`'s serializer writes for `routed.delivery_requests()`, with what the
    requests share (the body above all) serialized once, and no model built (a model and its
    serialization cost ~6 us a request, this ~1).

    Holds what the model would accept: `route` refuses ids that are not UUIDs (`_uuids`); the
    delivery id is made there; a parsed event's texts are storable (`shared.events`); and a
    request asks for order only with a position (`_ordering`).
    tests/unit/test_fanout_request_values.py holds the bytes equal to the model's.
    """
    if not routed.requests:
        return []
    position = routed.position
    shared = to_json(
        {
            "organization_id": routed.organization_id,
            "event_id": routed.event_id,
            "event": routed.event,
            "body": routed.body,
            "created_at": routed.stamp,
            "room_id": routed.room_id,
            "position": None
            if position is None
            else {"partition": position.partition, "offset": position.offset},
        }
    )[1:-1]
    return [
        (
            r.webhook_id,
            b"".join(
                (
                    b'{"type":"deliver","delivery_id":"',
                    r.delivery_id.encode(),
                    b'","webhook_id":"',
                    r.webhook_id.encode(),
                    b'",',
                    shared,
                    _ORDERED if r.ordering == "room" else _UNORDERED,
                )
            ),
        )
        for r in routed.requests
    ]


_ORDERED = b',"ordering":"room"}'
_UNORDERED = b',"ordering":"none"}'
# The ids a delivery request's model accepts (`UuidText`).
_UUID_TEXT = re.compile(UUID_PATTERN)


def _uuids(organization_id: str, webhook_ids: Sequence[str]) -> bool:
    """True when the ids a request takes from the index are UUIDs, as the registry makes
    them; a record that says otherwise is a bug, and the event is refused."""
    match = _UUID_TEXT.fullmatch
    if match(organization_id) is None:
        return False
    for webhook_id in webhook_ids:  # a loop, not all() over a generator: half the time
        if match(webhook_id) is None:
            return False
    return True


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
