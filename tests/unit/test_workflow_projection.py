"""What events and room-state records change in the bindings' projection."""

from __future__ import annotations

import pytest

from services.workflow_runner.projection import (
    DeleteUser,
    InvalidStateKey,
    PutFile,
    PutKv,
    PutRoom,
    PutUser,
    change_from_state,
    changes_from_event,
    collapse,
    state_key,
)

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
