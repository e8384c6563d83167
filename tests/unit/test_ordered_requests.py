"""What ordered delivery needs of a request: fanout marks the requests of an ordered webhook
with the event's room and position, a request without a good position is refused, and the
room a delivery is ordered in is a bounded, storable key."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from services.delivery.ordering import order_key
from services.fanout.routing import Routed, route
from shared.events import build_event
from shared.kafka import dumps
from shared.messages import DeliveryRequested, EventPosition
from tests.unit.test_fanout_routing import (
    HOOK_1,
    HOOK_2,
    NOW,
    ORG,
    indexes_of,
    joined_event,
    record,
    requests_of,
)

AT = EventPosition(partition=3, offset=41)


def routed(raw: bytes, *records, position=AT) -> Routed:
    outcome = route(
        raw, indexes_of(*records), record_stamp=NOW, oldest=NOW - timedelta(days=30),
        position=position,
    )  # fmt: skip
    assert isinstance(outcome, Routed)
    return outcome


def test_requests_carry_the_room_and_position_and_ask_for_order_only_where_the_webhook_does():
    outcome = routed(joined_event(), record(HOOK_1, ordering="room"), record(HOOK_2))
    ordered, unordered = requests_of(outcome)
    assert (ordered.webhook_id, ordered.ordering) == (HOOK_1, "room")
    assert (unordered.webhook_id, unordered.ordering) == (HOOK_2, "none")
    for request in requests_of(outcome):
        assert request.room_id == "room_1" and request.position == AT


def test_an_organization_event_carries_no_room_and_is_still_ordered_per_webhook():
    event = build_event(event="organization.updated", organization_id=ORG, room=None, now=NOW)
    hook = record(HOOK_1, ordering="room", events=["organization.updated"])
    outcome = routed(dumps(event), hook)
    [request] = requests_of(outcome)
    assert request.room_id is None and request.ordering == "room" and request.position == AT


def test_a_record_from_before_the_field_is_unordered():
    assert record(HOOK_1).ordering == "none"
    [request] = requests_of(routed(joined_event(), record(HOOK_1)))
    assert request.ordering == "none"


def request_with(**fields) -> dict:
    [request] = requests_of(routed(joined_event(), record(HOOK_1)))
    return {**request.model_dump(mode="json"), **fields}


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"ordering": "room", "position": None}, "position: required when ordering is room"),
        ({"ordering": "room", "position": {"partition": 1}}, "position.offset"),
        ({"position": {"partition": 1, "offset": -1}}, "position.offset"),
        ({"position": {"partition": 2**31, "offset": 1}}, "position.partition"),
        ({"position": {"partition": 1, "offset": 1, "extra": 1}}, "position.extra"),
        ({"position": [1, 2]}, "position"),
        ({"ordering": "rooms"}, "ordering"),
        ({"room_id": 5}, "room_id"),
    ],
)
def test_a_missing_or_malformed_position_is_refused_naming_it(fields, named):
    with pytest.raises(ValidationError) as caught:
        DeliveryRequested.model_validate(request_with(**fields))
    assert named in str(caught.value)


@pytest.mark.parametrize(
    ("room", "key"),
    [
        (None, ""),
        ("room_1", "room_1"),
        ("a\x00b", "a\\u0000b"),
    ],
)
def test_the_order_key_is_the_room_or_empty_for_organization_events(room, key):
    assert order_key(room) == key


def test_a_long_room_id_is_keyed_by_its_digest_and_stays_distinct():
    long_a, long_b = "a" * 5000, "a" * 4999 + "b"
    assert order_key(long_a).startswith("sha256:") and len(order_key(long_a)) == 71
    assert order_key(long_a) != order_key(long_b)
