"""The JSON Schema (2020-12) of the body a webhook receives for each catalog event.

Pure. It describes what `render_payload` writes, not what producers send: `timestamp` as
JavaScript's `toISOString()` prints it, no `token` on a user, `data` = `{roomId?, userId?}`,
no room on organization events, and, where the event's other fields are free-form, those
fields as the producer sent them (so the schema allows them without naming them).
"""

from __future__ import annotations

import copy
from typing import Any

from shared.events.catalog import (
    MAX_ID_LENGTH,
    EventBase,
    EventType,
    MeetingEvent,
    OrganizationEvent,
    ParticipantEvent,
    SessionClosedEvent,
    SessionStartedEvent,
    UserEvent,
)

DIALECT = "https://json-schema.org/draft/2020-12/schema"

_ID = {"type": "string", "minLength": 1}


def _absent(why: str) -> dict[str, Any]:
    """A property the body never has (`false`, with the reason)."""
    return {"not": {}, "description": why}


_TIMESTAMP = {
    "type": "string",
    "format": "date-time",
    "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$",
    "description": "UTC with milliseconds, as JavaScript's toISOString() writes it.",
}
_ROOM = {
    "type": "object",
    "description": "The room as its service sent it; fields beyond these are delivered as sent.",
    "properties": {"id": _ID, "name": {"type": ["string", "null"]}},
    "required": ["id"],
}
_ROOM_REF = {
    "type": "object",
    "description": "A reference to the room; fields beyond `id` are delivered as sent.",
    "properties": {"id": _ID},
    "required": ["id"],
}
_USER = {
    "type": "object",
    "description": "The user as sent, without its `token` (removed at any depth).",
    "properties": {"id": _ID, "token": _absent("Removed before delivery.")},
    "required": ["id"],
}
_USERS = {"type": "array", "items": _USER}
_NO_ROOM = _absent("Organization events carry no room.")

# Per event model: the body's fields besides the envelope and `data`, which of them are
# always there, and whether the producer's own fields are delivered too (free-form).
_SHAPES: dict[type[EventBase], tuple[dict[str, Any], tuple[str, ...], bool]] = {
    ParticipantEvent: ({"room": _ROOM, "user": _USER}, ("room", "user"), False),
    SessionStartedEvent: ({"room": _ROOM}, ("room",), False),
    SessionClosedEvent: ({"room": _ROOM, "users": _USERS}, ("room", "users"), False),
    UserEvent: ({"room": _ROOM_REF, "user": _USER}, ("room", "user"), False),
    MeetingEvent: ({"room": _ROOM, "user": _USER, "users": _USERS}, ("room",), True),
    OrganizationEvent: ({"room": _NO_ROOM, "user": _USER, "users": _USERS}, (), True),
}


def payload_schema(spec: EventType) -> dict[str, Any]:
    """The delivered body of `spec`'s events as a standalone JSON Schema; a new copy.

    KeyError when the entry's model has no shape here (a new model needs one).
    """
    fields, required, free_form = _SHAPES[spec.payload_model]
    described = "Fields beyond these are the producer's, delivered as sent." if free_form else ""
    return copy.deepcopy(
        {
            "$schema": DIALECT,
            "title": f"{spec.name} as delivered",
            "description": f"{spec.description}. {described}".strip(),
            "type": "object",
            "properties": {
                "id": {
                    **_ID,
                    "maxLength": MAX_ID_LENGTH,
                    "description": "The producer's event id: a re-sent event keeps it.",
                },
                "event": {"const": spec.name},
                "timestamp": _TIMESTAMP,
                "organization_id": _ID,
                **fields,
                "data": _data(fields, required),
            },
            "required": ["id", "event", "timestamp", "organization_id", *required, "data"],
            "additionalProperties": free_form,
        }
    )


def _data(fields: dict[str, Any], required: tuple[str, ...]) -> dict[str, Any]:
    """`{roomId?, userId?}`: each there exactly when the body has a room or a user."""
    properties: dict[str, Any] = {}
    always = []
    if "room" in required:
        properties["roomId"] = {**_ID, "description": "room.id"}
        always.append("roomId")
    if "user" in fields:
        properties["userId"] = {**_ID, "description": "user.id"}
        if "user" in required:
            always.append("userId")
    return {
        "type": "object",
        "description": "For the CollabKit webhooks guide's examples.",
        "properties": properties,
        "required": always,
        "additionalProperties": False,
    }
