"""`roomhooks trigger`'s samples and `--set`: every catalog event has a valid, realistic sample,
and an override changes exactly the field named or is refused with the reason."""

from __future__ import annotations

import argparse
import json
import uuid
from datetime import UTC, datetime

import pytest

from devtool.cli_support import EXIT_USAGE, CliError
from devtool.trigger import assignment, triggered_event
from shared.events import CATALOG, Scope, parse_event, render_payload
from shared.events.samples import ROOM, sample_event

ACCOUNT = uuid.UUID("9b7e7a4e-8a38-4c6e-9a0e-1f7f5e3f2a11")
NOW = datetime(2026, 5, 29, 10, 6, tzinfo=UTC)


@pytest.mark.parametrize("name", list(CATALOG))
def test_every_catalog_event_has_a_sample_the_catalog_accepts(name: str) -> None:
    event = sample_event(name, organization_id=str(ACCOUNT), now=NOW)
    parsed = parse_event(event)
    assert (parsed.event, parsed.organization_id) == (name, str(ACCOUNT))
    assert event["timestamp"] == "2026-05-29T10:06:00.000Z"
    body = json.loads(render_payload(parsed))
    if CATALOG[name].scope is Scope.ROOM:
        assert body["room"]["id"] == ROOM["id"]
        assert body["data"]["roomId"] == ROOM["id"]
    else:
        assert "room" not in body
        assert body["organization"]["id"] == str(ACCOUNT)
    assert len(body) > 5, f"{name}: only the envelope, no payload"


def test_samples_carry_users_where_the_event_names_them() -> None:
    joined = sample_event("participant.joined", organization_id="o", now=NOW)
    closed = sample_event("session.closed", organization_id="o", now=NOW)
    assert joined["user"]["name"] == "Ada Lovelace"
    assert [u["id"] for u in closed["users"]] == ["user-001", "user-002"]


def test_each_sample_is_a_new_event_and_a_new_copy() -> None:
    first = sample_event("session.closed", organization_id="o", now=NOW)
    first["users"][0]["name"] = "changed"
    second = sample_event("session.closed", organization_id="o", now=NOW)
    assert second["users"][0]["name"] == "Ada Lovelace"
    assert first["id"] != second["id"]


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("room.name=Standup", (["room", "name"], "Standup")),
        ('room.id="42"', (["room", "id"], "42")),
        ("users.1.id=u-9", (["users", "1", "id"], "u-9")),
        ("meeting.title=", (["meeting", "title"], "")),
        ('member={"id": "m1"}', (["member"], {"id": "m1"})),
        ("x.y=a=b", (["x", "y"], "a=b")),
    ],
)
def test_a_value_is_json_when_it_parses_else_text(text: str, parsed: tuple) -> None:
    assert assignment(text) == parsed


@pytest.mark.parametrize("text", ["room.name", "=x", "room..name=x", "room.=x"])
def test_an_assignment_needs_a_dotted_path_and_an_equals_sign(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="is not PATH=VALUE"):
        assignment(text)


def test_overrides_change_exactly_the_fields_named() -> None:
    sets = [assignment("room.name=Standup"), assignment("users.1.id=u-9"), assignment("id=e-1")]
    event = triggered_event("session.closed", ACCOUNT, sets, now=NOW)
    plain = sample_event("session.closed", organization_id=str(ACCOUNT), now=NOW, event_id="e-1")
    assert event["room"] == {**plain["room"], "name": "Standup"}
    assert event["users"][1] == {**plain["users"][1], "id": "u-9"}
    assert event["id"] == "e-1"
    assert event["users"][0] == plain["users"][0]


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("participant.joined", "room.plan=pro", "room has no field 'plan' (it has: id, name)"),
        ("participant.joined", "rooms.id=x", "the event has no field 'rooms'"),
        ("session.closed", "users.7.id=x", "users has items 0 to 1"),
        ("session.closed", "users.first.id=x", "users has items 0 to 1"),
        ("participant.joined", "room.name.first=x", 'room.name is "Design review", not an'),
        ("participant.joined", "event=participant.left", "name the event as EVENT"),
        ("member.added", "organization_id=other", "use --account"),
        ("participant.joined", "room.id=42", "the catalog refuses the result (room.id:"),
        ("participant.joined", "user=null", "the catalog refuses the result (user:"),
        ("member.added", 'room={"id": "r"}', "the catalog refuses the result (room:"),
    ],
    ids=[
        "unknown-field",
        "unknown-top-level",
        "index-out-of-range",
        "index-not-a-number",
        "into-a-text",
        "event-name",
        "organization",
        "number-for-text",
        "required-removed",
        "room-on-organization-event",
    ],
)
def test_a_bad_override_is_bad_input_naming_the_path(name: str, text: str, problem: str) -> None:
    with pytest.raises(CliError) as raised:
        triggered_event(name, ACCOUNT, [assignment(text)], now=NOW)
    assert raised.value.code == EXIT_USAGE
    assert problem in raised.value.message
    assert "\n" not in raised.value.message
