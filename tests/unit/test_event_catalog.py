"""Each catalog event's payload schema and example: the example is what delivery renders for
the sample event and validates against the schema, and the schema refuses bodies delivery
never sends."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from shared.events import (
    CATALOG,
    EventBase,
    FreeFormEvent,
    example_payload,
    parse_event,
    payload_schema,
    render_payload,
    sample_event,
)
from shared.events.samples import EXAMPLE_AT, EXAMPLE_EVENT_ID, EXAMPLE_ORGANIZATION_ID
from shared.jsjson import to_js_json

NAMES = list(CATALOG)
ENVELOPE = ["id", "event", "timestamp", "organization_id"]


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(
        payload_schema(CATALOG[name]), format_checker=Draft202012Validator.FORMAT_CHECKER
    )


@pytest.mark.parametrize("name", NAMES)
def test_every_payload_schema_is_a_valid_json_schema(name: str) -> None:
    schema = payload_schema(CATALOG[name])
    Draft202012Validator.check_schema(schema)
    assert schema["properties"]["event"] == {"const": name}
    assert schema["required"][:4] == ENVELOPE and schema["required"][-1] == "data"


@pytest.mark.parametrize("name", NAMES)
def test_every_example_validates_against_its_payload_schema(name: str) -> None:
    validator(name).validate(example_payload(name))


@pytest.mark.parametrize("name", NAMES)
def test_the_example_is_exactly_what_delivery_renders_for_the_sample(name: str) -> None:
    sample = sample_event(
        name, organization_id=EXAMPLE_ORGANIZATION_ID, now=EXAMPLE_AT, event_id=EXAMPLE_EVENT_ID
    )
    delivered = render_payload(parse_event(sample))

    example = example_payload(name)

    assert to_js_json(example).encode("utf-8") == delivered
    assert example["id"] == EXAMPLE_EVENT_ID and example["event"] == name
    assert example["timestamp"] == "2026-05-29T10:06:00.000Z"
    # Realistic: the sample's payload besides the envelope and `data`.
    assert set(example) - {*ENVELOPE, "data"}, f"{name}: only the envelope"


def test_examples_are_new_copies_and_do_not_change() -> None:
    first = example_payload("session.closed")
    first["users"][0]["name"] = "changed"
    assert example_payload("session.closed")["users"][0]["name"] == "Ada Lovelace"
    assert example_payload("member.added") == example_payload("member.added")


def test_an_unknown_event_has_no_example() -> None:
    with pytest.raises(KeyError):
        example_payload("party.started")


@pytest.mark.parametrize("name", NAMES)
def test_the_schema_names_exactly_the_fields_of_an_event_the_catalog_owns(name: str) -> None:
    model: type[EventBase] = CATALOG[name].payload_model
    schema = payload_schema(CATALOG[name])
    fields = set(model.model_fields)
    if issubclass(model, FreeFormEvent):
        assert schema["additionalProperties"] is True
        assert fields <= set(schema["properties"])
    else:
        assert schema["additionalProperties"] is False
        assert set(schema["properties"]) == fields | {"data"}


def _set(path: str, value: Any):
    def change(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = body
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[int(last) if isinstance(node, list) else last] = value

    return change


def _drop(path: str):
    def change(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = body
        for part in parents:
            node = node[part]
        del node[last]

    return change


@pytest.mark.parametrize(
    ("name", "change", "where"),
    [
        ("participant.joined", _set("user.token", "room-token"), ["user", "token"]),
        ("session.closed", _set("users.1.token", "room-token"), ["users", 1, "token"]),
        ("meeting.started", _set("user", {"id": "u", "token": "t"}), ["user", "token"]),
        ("participant.joined", _set("timestamp", "2026-05-29T10:06:00+00:00"), ["timestamp"]),
        ("participant.joined", _set("timestamp", "2026-05-29T10:06:00Z"), ["timestamp"]),
        ("participant.joined", _drop("data.userId"), ["data"]),
        ("session.started", _set("data.userId", "user-001"), ["data"]),
        ("member.added", _set("data.roomId", "r"), ["data"]),
        ("member.added", _set("room", {"id": "r"}), ["room"]),
        ("member.added", _set("room", None), ["room"]),
        ("participant.joined", _set("plan", "pro"), []),
        ("user.created", _drop("room.id"), ["room"]),
        ("participant.joined", _set("event", "participant.left"), ["event"]),
        ("participant.joined", _set("id", ""), ["id"]),
        ("participant.joined", _set("id", "x" * 201), ["id"]),
        ("meeting.ended", _drop("data"), []),
        ("session.closed", _set("users", {"id": "u"}), ["users"]),
    ],
    ids=[
        "user-token",
        "users-token",
        "meeting-user-token",
        "timestamp-offset",
        "timestamp-no-milliseconds",
        "participant-without-data-user",
        "data-user-without-a-user",
        "organization-data-room",
        "organization-room",
        "organization-null-room",
        "field-of-a-closed-event",
        "room-without-id",
        "other-event-name",
        "empty-id",
        "id-too-long",
        "no-data",
        "users-not-a-list",
    ],
)
def test_the_schema_refuses_what_delivery_never_sends(name: str, change, where: list) -> None:
    body = copy.deepcopy(example_payload(name))
    change(body)
    errors = list(validator(name).iter_errors(body))
    assert errors, json.dumps(body)
    assert any(list(e.absolute_path) == where for e in errors), [e.message for e in errors]


def test_free_form_fields_are_allowed_where_the_producer_owns_them() -> None:
    meeting = {**example_payload("meeting.started"), "poll": {"question": "Lunch?"}}
    organization = {**example_payload("member.added"), "user": {"id": "u", "plan": "pro"}}
    validator("meeting.started").validate(meeting)
    validator("member.added").validate(organization)
