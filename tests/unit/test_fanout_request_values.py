"""Fanout writes each delivery request's record value without building its model
(`request_values`); the bytes must be exactly what `DeliveryRequested`'s serializer writes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from services.fanout.routing import Addressed, Routed, request_values
from shared.messages import DeliveryRequested, EventPosition, delivery_id_for

# What a parsed event's texts may hold: anything Postgres text stores (no NUL, no lone
# surrogate), quotes, backslashes, control and line-separator characters among it.
texts = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=40,
) | st.sampled_from(['"', "\\", '\\"', "\u2028\u2029", "\x1f\x7f", "é🎉", "</script>"])
ids = st.uuids().map(str) | st.uuids().map(lambda u: str(u).upper())
moments = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]),
)  # fmt: skip
positions = st.builds(
    EventPosition, partition=st.integers(0, 2**31 - 1), offset=st.integers(0, 2**63 - 1)
)


@st.composite
def routed_events(draw: st.DrawFn) -> Routed:
    position = draw(st.none() | positions)
    orderings = st.sampled_from(["none", "room"] if position is not None else ["none"])
    event_id = draw(texts)
    # Each request's id is its webhook's and event's, as routing makes it (any case).
    requests = [
        Addressed(webhook_id, spelled(delivery_id_for(webhook_id, event_id)), ordering)
        for webhook_id, spelled, ordering in draw(
            st.lists(st.tuples(ids, st.sampled_from([str, str.upper]), orderings), max_size=4)
        )
    ]
    return Routed(
        event=draw(texts),
        event_id=event_id,
        organization_id=draw(ids),
        room_id=draw(st.none() | texts),
        body=draw(texts),
        requests=requests,
        runs=[],
        stamp=draw(moments),
        position=position,
    )


@settings(max_examples=400)
@given(routed=routed_events())
def test_each_value_is_the_bytes_the_model_serializes(routed: Routed) -> None:
    expected = [
        (model.webhook_id, DeliveryRequested.__pydantic_serializer__.to_json(model))
        for model in routed.delivery_requests()
    ]
    assert request_values(routed) == expected


def test_an_event_without_requests_makes_no_values() -> None:
    routed = Routed(
        "participant.joined", "ev_1", str(uuid.uuid4()), None, "{}", [], [], datetime.now(UTC)
    )
    assert request_values(routed) == []
