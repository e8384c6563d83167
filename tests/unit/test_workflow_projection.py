"""What events and room-state records change in the bindings' projection."""

from __future__ import annotations

import json

import pytest

from services.workflow_runner.projection import (
    DeleteUser,
    PutFile,
    PutKv,
    PutRoom,
    PutUser,
    change_from_state,
    changes_from_event,
    collapse,
    read_event,
)
from services.workflow_runner.projection_store import MAX_VALUE_BYTES, rows_of
from shared.room_state import InvalidStateKey, state_key

ORG = "org-1"
ROOM = {"id": "r1", "name": "Design review"}
ADA = {"id": "u1", "name": "Ada", "token": "secret"}


def event(name: str, **payload) -> dict:
    return {"id": "e1", "event": name, "organization_id": ORG, **payload}


def test_a_participant_event_stores_the_room_and_the_user_without_token():
    changes = changes_from_event(event("participant.joined", room=ROOM, user=ADA))
    assert changes == [
        PutRoom(ORG, "r1", ROOM),
        PutUser(ORG, "r1", "u1", {"id": "u1", "name": "Ada"}),
    ]


def test_user_events_carry_only_the_room_id_so_the_room_is_not_overwritten():
    changes = changes_from_event(event("user.updated", room={"id": "r1"}, user=ADA))
    assert changes == [PutUser(ORG, "r1", "u1", {"id": "u1", "name": "Ada"})]


def test_user_deleted_removes_the_user():
    assert changes_from_event(event("user.deleted", room={"id": "r1"}, user=ADA)) == [
        DeleteUser(ORG, "r1", "u1")
    ]


def test_session_closed_stores_every_user():
    grace = {"id": "u2", "token": "t"}
    changes = changes_from_event(event("session.closed", room=ROOM, users=[ADA, grace]))
    assert changes[1:] == [
        PutUser(ORG, "r1", "u1", {"id": "u1", "name": "Ada"}),
        PutUser(ORG, "r1", "u2", {"id": "u2"}),
    ]


@pytest.mark.parametrize(
    "payload",
    [event("member.added", room=None), event("x", room="r1"), {"room": ROOM}, event("x")],
)
def test_events_without_a_room_change_nothing(payload):
    assert changes_from_event(payload) == []


@pytest.mark.parametrize(
    ("key", "value", "change"),
    [
        ("o/r/kv/tasks/task-1", {"done": True}, PutKv("o", "r", "tasks", "task-1", {"done": True})),
        ("o/r/kv/tasks/a/b", 3, PutKv("o", "r", "tasks", "a/b", 3)),
        ("o/r/kv/tasks/t", None, PutKv("o", "r", "tasks", "t", None)),
        ("o/r/file/docs/a.pdf", {"size": 10}, PutFile("o", "r", "docs/a.pdf", {"size": 10})),
        ("o/r/file/a.pdf", None, PutFile("o", "r", "a.pdf", None)),
    ],
)
def test_room_state_keys(key, value, change):
    assert change_from_state(key, value) == change


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("o/r/kv/tasks", 1),
        ("o//kv/s/k", 1),
        ("o/r/blob/x", 1),
        ("nope", 1),
        ("o/r/file/a", "not-an-object"),
    ],
)
def test_bad_room_state_keys_are_refused(key, value):
    with pytest.raises(InvalidStateKey):
        change_from_state(key, value)


def test_state_key_round_trips_and_refuses_slashes_in_ids():
    key = state_key("o", "r", "kv", "tasks", "t1")
    assert change_from_state(key, 1) == PutKv("o", "r", "tasks", "t1", 1)
    with pytest.raises(InvalidStateKey):
        state_key("o/x", "r", "kv", "s", "k")


def test_collapse_keeps_the_last_change_of_each_row():
    first, last = PutRoom(ORG, "r1", {"id": "r1", "v": 1}), PutRoom(ORG, "r1", {"id": "r1", "v": 2})
    assert collapse([first, last]) == [last]


def test_collapse_lets_a_later_delete_win_over_a_put_and_a_later_put_over_a_delete():
    put, gone = PutUser(ORG, "r1", "u1", {"id": "u1"}), DeleteUser(ORG, "r1", "u1")
    assert collapse([put, gone]) == [gone]
    assert collapse([gone, put]) == [put]
    kv_put, kv_gone = PutKv(ORG, "r1", "s", "k", 1), PutKv(ORG, "r1", "s", "k", None)
    assert collapse([kv_put, kv_gone]) == [kv_gone]
    file_gone, file_put = PutFile(ORG, "r1", "a.txt", None), PutFile(ORG, "r1", "a.txt", {})
    assert collapse([file_gone, file_put]) == [file_put]


def test_collapse_keeps_changes_to_different_rows_in_the_order_of_their_last_change():
    r1, r2 = PutRoom(ORG, "r1", {"id": "r1"}), PutRoom(ORG, "r2", {"id": "r2"})
    other_org = PutRoom("org-2", "r1", {"id": "r1"})
    user = PutUser(ORG, "r1", "u1", {"id": "u1"})
    assert collapse([r1, r2, other_org, user, r1]) == [r2, other_org, user, r1]


def test_collapse_tells_a_kv_entry_from_a_file_of_the_same_name():
    kv, file = PutKv(ORG, "r1", "a", "b", 1), PutFile(ORG, "r1", "a/b", {})
    assert collapse([kv, file]) == [kv, file]


def test_an_event_whose_users_is_not_a_list_keeps_its_room_and_user_and_says_why() -> None:
    changes, skipped = read_event(event("session.closed", room=ROOM, user=ADA, users=5))
    assert changes == [
        PutRoom(ORG, "r1", ROOM),
        PutUser(ORG, "r1", "u1", {"id": "u1", "name": "Ada"}),
    ]
    assert skipped == ["users is not a list but int"]


@pytest.mark.parametrize(
    ("payload", "kept", "why"),
    [
        (event("x", room=ROOM, users=[ADA, 5, {"id": ["u"]}]), 2, "a member of users"),
        (event("x", room=ROOM, users={"u1": ADA}), 1, "users is not a list but dict"),
        (event("x", room=ROOM, user="u1"), 1, "user is not an object with an id"),
        (event("x", room=ROOM, user={"id": True}), 1, "user is not an object with an id"),
    ],
)
def test_wrongly_shaped_parts_are_passed_over_with_a_reason(payload, kept, why) -> None:
    changes, skipped = read_event(payload)
    assert len(changes) == kept
    assert skipped and all(reason.startswith(why) for reason in skipped)


def test_ids_and_values_postgres_refuses_are_written_escaped_and_said_so() -> None:
    rows = rows_of([PutUser(ORG, "r\x00", "u\ud800", {"id": "u\ud800", "name": "A\x00da"})])
    [row] = rows.rows
    assert row.key == (ORG, "r\\u0000", "u\\ud800")
    assert json.loads(row.text) == {"id": "u\\ud800", "name": "A\\u0000da"}
    [(cleaned, why)] = rows.cleaned
    assert cleaned is row and "an id escaped" in why and "NUL or lone surrogate" in why
    assert rows.skipped == []


def test_a_value_or_key_too_large_to_keep_is_passed_over_with_a_reason() -> None:
    huge = PutKv(ORG, "r1", "notes", "big", "x" * MAX_VALUE_BYTES)
    long_id = PutUser(ORG, "r1", "u" * 3000, {"id": "u"})
    fine = PutKv(ORG, "r1", "notes", "small", "x")
    rows = rows_of([huge, long_id, fine])
    assert [row.key[-1] for row in rows.rows] == ["small"]
    assert [(table, why.split(" of ")[0]) for table, _key, why in rows.skipped] == [
        ("kv_entries", "value"),
        ("room_users", "ids"),
    ]
