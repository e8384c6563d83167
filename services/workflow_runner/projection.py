"""Pure: what an event or a room-state record changes in the bindings' projection.

Rooms and users come from room events (the room object in the payload, the user or users;
tokens never stored), KV entries and file metadata from `roomhooks.room-state` records keyed
`<org>/<room>/kv/<store>/<key>` or `<org>/<room>/file/<path>` (null value: deleted).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from shared.room_state import InvalidStateKey


@dataclass(frozen=True)
class PutRoom:
    organization_id: str
    room_id: str
    data: dict[str, Any]


@dataclass(frozen=True)
class PutUser:
    organization_id: str
    room_id: str
    user_id: str
    data: dict[str, Any]


@dataclass(frozen=True)
class DeleteUser:
    organization_id: str
    room_id: str
    user_id: str


@dataclass(frozen=True)
class PutKv:
    organization_id: str
    room_id: str
    store: str
    key: str
    value: Any  # None: delete


@dataclass(frozen=True)
class PutFile:
    organization_id: str
    room_id: str
    path: str
    metadata: dict[str, Any] | None  # None: delete


Change = PutRoom | PutUser | DeleteUser | PutKv | PutFile


def row_of(change: Change) -> tuple[str, tuple[str, ...], Any]:
    """(table, key, value) of the row a change writes; value None deletes the row."""
    match change:
        case PutRoom(org, room, data):
            return "rooms", (org, room), data
        case PutUser(org, room, user, data):
            return "room_users", (org, room, user), data
        case DeleteUser(org, room, user):
            return "room_users", (org, room, user), None
        case PutKv(org, room, store, key, value):
            return "kv_entries", (org, room, store, key), value
        case PutFile(org, room, path, metadata):
            return "files", (org, room, path), metadata
    raise TypeError(f"not a projection change: {change!r}")


def collapse(changes: Iterable[Change]) -> list[Change]:
    """The changes of a batch with only the last one per row kept: applying them in any
    order gives what applying them all in order gives, and one statement per kind of change
    never touches a row twice (which `INSERT ... ON CONFLICT DO UPDATE` refuses)."""
    last: dict[tuple[str, tuple[str, ...]], Change] = {}
    for change in changes:
        table, row, _value = row_of(change)
        key = (table, row)
        last.pop(key, None)  # re-insert: the dict keeps the order of last occurrences
        last[key] = change
    return list(last.values())


def _strip_tokens(user: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in user.items() if k != "token"}


def changes_from_event(payload: dict[str, Any]) -> list[Change]:
    """The projection changes one event implies (the payload as webhooks receive it, or the
    producer's event: tokens are stripped here either way)."""
    return read_event(payload)[0]


def read_event(payload: dict[str, Any]) -> tuple[list[Change], list[str]]:
    """The changes one event implies, and why any part of it was passed over (a `users` that
    is not a list, a user without a usable id): a wrongly shaped part never fails the rest."""
    org = payload.get("organization_id")
    room = payload.get("room")
    if not isinstance(org, str) or not isinstance(room, dict) or not _is_id(room.get("id")):
        return [], []
    room_id = str(room["id"])
    changes: list[Change] = []
    skipped: list[str] = []
    if set(room) - {"id"}:  # a full room object, not the `{id}` of user.* events
        changes.append(PutRoom(org, room_id, dict(room)))
    user = payload.get("user")
    if isinstance(user, dict) and _is_id(user.get("id")):
        if payload.get("event") == "user.deleted":
            changes.append(DeleteUser(org, room_id, str(user["id"])))
        else:
            changes.append(PutUser(org, room_id, str(user["id"]), _strip_tokens(user)))
    elif user is not None:
        skipped.append("user is not an object with an id")
    users = payload.get("users")
    if users is not None and not isinstance(users, list):
        skipped.append(f"users is not a list but {type(users).__name__}")
        users = None
    for member in users or []:
        if isinstance(member, dict) and _is_id(member.get("id")):
            changes.append(PutUser(org, room_id, str(member["id"]), _strip_tokens(member)))
        else:
            skipped.append("a member of users is not an object with an id")
    return changes, skipped


def _is_id(value: Any) -> bool:
    """An id we key rows by: a non-empty string or an integer (not a bool, list, object)."""
    if isinstance(value, bool):
        return False
    return (isinstance(value, str) and value != "") or isinstance(value, int)


def change_from_state(key: str, value: Any) -> PutKv | PutFile:
    """A room-state record: `<org>/<room>/kv/<store>/<key>` or `<org>/<room>/file/<path>`."""
    parts = key.split("/", 3)
    if len(parts) < 4 or not all(parts[:2]):
        raise InvalidStateKey(f"not a room-state key: {key!r}")
    org, room_id, kind, rest = parts
    if kind == "kv":
        store, _, item = rest.partition("/")
        if not store or not item:
            raise InvalidStateKey(f"kv key needs <store>/<key>: {key!r}")
        return PutKv(org, room_id, store, item, value)
    if kind == "file":
        if value is not None and not isinstance(value, dict):
            raise InvalidStateKey(f"file metadata must be a JSON object: {key!r}")
        return PutFile(org, room_id, rest, value)
    raise InvalidStateKey(f"unknown room-state kind {kind!r} in {key!r}")
