"""Delivery requests refuse, where they are read, the text Postgres could not store and an id
that is not the one of their webhook and event."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from shared.messages import DeliveryRequested, delivery_id_for

WEBHOOK = "6f1c1f1e-0000-4000-8000-000000000002"
GOOD = {
    "delivery_id": delivery_id_for(WEBHOOK, "e1"),
    "webhook_id": WEBHOOK,
    "organization_id": "6f1c1f1e-0000-4000-8000-000000000003",
    "event_id": "e1",
    "event": "participant.joined",
    "body": '{"id":"e1","name":"Zo\u00e9 \u65e5\u672c"}',
    "created_at": "2026-12-01T12:00:00Z",
}


def test_a_well_formed_request_is_read_as_it_is():
    request = DeliveryRequested.model_validate_json(json.dumps(GOOD))
    assert request.body == GOOD["body"]


@pytest.mark.parametrize("field", ["event_id", "event", "body"])
@pytest.mark.parametrize(("bad", "code"), [("a\x00b", "U+0000"), ("a\ud800b", "U+D800")])
def test_a_nul_or_lone_surrogate_is_refused_naming_the_field(field, bad, code):
    with pytest.raises(ValidationError) as caught:
        DeliveryRequested.model_validate({**GOOD, field: bad})
    [error] = caught.value.errors()
    assert error["loc"] == (field,)
    assert f"holds {code} at index 1" in error["msg"]


def test_an_escaped_nul_inside_the_json_body_is_fine():
    # The body is JSON text: "\\u0000" there is six characters, which Postgres stores.
    request = DeliveryRequested.model_validate({**GOOD, "body": '{"name":"a\\u0000b"}'})
    assert request.body == '{"name":"a\\u0000b"}'


@pytest.mark.parametrize(
    "changed",
    [
        {"delivery_id": delivery_id_for(WEBHOOK, "e2")},  # another event's
        {"delivery_id": delivery_id_for("6f1c1f1e-0000-4000-8000-000000000009", "e1")},
        {"event_id": "e2"},
        {"delivery_id": "6f1c1f1e-0000-4000-8000-000000000001"},  # not name-based at all
    ],
)
def test_a_request_whose_id_is_not_its_webhook_and_event_s_is_refused(changed):
    # Delivery stores a request under its id alone: another id for the same webhook and
    # event would be a second delivery of it.
    with pytest.raises(ValidationError) as caught:
        DeliveryRequested.model_validate({**GOOD, **changed})
    [error] = caught.value.errors()
    assert error["msg"] == "Value error, delivery_id: not UUIDv5(webhook_id, event_id)"


def test_the_ids_are_compared_as_uuids_whatever_their_case():
    upper = {**GOOD, "delivery_id": GOOD["delivery_id"].upper(), "webhook_id": WEBHOOK.upper()}
    assert DeliveryRequested.model_validate(upper).delivery_id == GOOD["delivery_id"].upper()
