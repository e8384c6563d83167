"""Inbound events: the catalog and its models, the checks at the door, the body we deliver.

Inbound (topic `roomhooks.events`, key = the room id, else the organization id):
`{id, event, timestamp, organization_id, room, user?, users?}` plus free-form fields for
meeting and organization events. Every service validates events with `parse_event`; fanout
renders the customer body once with `render_payload`.

- `catalog`: the event names, their scopes and the models that validate them;
- `ingress`: size, depth, encoding and storable-text rules, and `InvalidEvent`;
- `rendering`: the delivered body, timestamps as JavaScript writes them, `build_event`;
- `payload_schema`: the JSON Schema of the delivered body, per catalog event;
- `samples`: a realistic event of each name, as sent and as delivered.
"""

from shared.events.catalog import (
    CATALOG,
    EventBase,
    EventType,
    FreeFormEvent,
    MeetingEvent,
    OrganizationEvent,
    ParticipantEvent,
    Room,
    RoomRef,
    Scope,
    SessionClosedEvent,
    SessionStartedEvent,
    User,
    UserEvent,
    event_names,
    unknown_events,
)
from shared.events.ingress import (
    MAX_DEPTH,
    MAX_EVENT_BYTES,
    MAX_REASON_CHARS,
    InvalidEvent,
    escape_unstorable,
    nested_deeper_than,
    parse_event,
)
from shared.events.payload_schema import payload_schema
from shared.events.rendering import build_event, format_timestamp, render_payload
from shared.events.samples import example_payload, sample_event

__all__ = [
    "CATALOG",
    "MAX_DEPTH",
    "MAX_EVENT_BYTES",
    "MAX_REASON_CHARS",
    "EventBase",
    "EventType",
    "FreeFormEvent",
    "InvalidEvent",
    "MeetingEvent",
    "OrganizationEvent",
    "ParticipantEvent",
    "Room",
    "RoomRef",
    "Scope",
    "SessionClosedEvent",
    "SessionStartedEvent",
    "User",
    "UserEvent",
    "build_event",
    "escape_unstorable",
    "event_names",
    "example_payload",
    "format_timestamp",
    "nested_deeper_than",
    "parse_event",
    "payload_schema",
    "render_payload",
    "sample_event",
    "unknown_events",
]
