"""The event catalog and the models of the inbound events it names.

Pure: stdlib and pydantic only. Each catalog entry names one event, its scope (room or
organization) and the model that validates the whole event; `shared.events.parse_event`
picks the model by the event's name. Payload objects we do not own (rooms, users, meeting
fields) keep their unknown fields and are delivered as sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_ID_LENGTH = 200


class Scope(StrEnum):
    ROOM = "room"
    ORGANIZATION = "organization"


# --- payload objects -----------------------------------------------------------------------


class Room(BaseModel):
    """A CollabKitRoom: `{id, name, ...}`; unknown fields are kept and delivered as sent."""

    model_config = ConfigDict(frozen=True, extra="allow")

    id: str = Field(min_length=1)
    name: str | None = None


class RoomRef(BaseModel):
    """The `{id}` room of `user.*` events."""

    model_config = ConfigDict(frozen=True, extra="allow")

    id: str = Field(min_length=1)


class User(BaseModel):
    """A CollabKitUser. It may carry a `token` (kept as an extra field): rendering strips it."""

    model_config = ConfigDict(frozen=True, extra="allow")

    id: str = Field(min_length=1)


# --- event envelopes -----------------------------------------------------------------------


class EventBase(BaseModel):
    """A fact from a room or an organization, in on `roomhooks.events`.

    Key: the room id, else the organization id (per-room order). Written by the room services
    (and the registry's own organization events); read by fanout and the workflow runner.
    `id` is the producer's idempotency key: a re-sent event keeps it, and the delivery and
    run ids derive from it, so a re-read event is delivered and run once. Build instances
    with `parse_event`; the subclass is chosen by the catalog entry of `event`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    event: str
    timestamp: datetime
    organization_id: str = Field(min_length=1)

    @field_validator("event")
    @classmethod
    def _event_matches_model(cls, name: str) -> str:
        spec = CATALOG.get(name)
        if spec is None:
            raise ValueError(f"unknown event {name[:100]!r}")
        if spec.payload_model is not cls:
            raise ValueError(f"{name!r} is not a {cls.__name__}")
        return name

    @field_validator("timestamp", mode="before")
    @classmethod
    def _utc_timestamp(cls, value: object) -> datetime:
        return _parse_timestamp(value)

    @property
    def scope(self) -> Scope:
        return CATALOG[self.event].scope

    @property
    def room_id(self) -> str | None:
        room = self._field_or_extra("room")
        return room.id if room is not None else None

    @property
    def user_id(self) -> str | None:
        user = self._field_or_extra("user")
        return user.id if user is not None else None

    def _field_or_extra(self, name: str) -> Any:
        # `getattr(self, name, None)` costs ~2 us on a model without the field (pydantic
        # raises AttributeError, getattr catches it), on every render: the field's value is
        # read from the model's dict, else from its extra fields, as pydantic's getattr does.
        fields = self.__dict__
        return fields[name] if name in fields else (self.__pydantic_extra__ or {}).get(name)


class ParticipantEvent(EventBase):
    """`participant.joined` / `participant.left`: `user` came online in, or left, `room`."""

    room: Room
    user: User


class SessionStartedEvent(EventBase):
    """`session.started`: the first user joined `room`, so a new session began."""

    room: Room


class SessionClosedEvent(EventBase):
    """`session.closed`: the last user left `room`, so its session ended (with its `users`)."""

    room: Room
    users: list[User]


class UserEvent(EventBase):
    """`user.created` / `user.updated` / `user.deleted`: the room is only a reference."""

    room: RoomRef
    user: User


class FreeFormEvent(EventBase):
    """An event whose payload fields beyond the envelope are free-form and delivered as sent."""

    model_config = ConfigDict(frozen=True, extra="allow")

    user: User | None = None
    users: list[User] | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_data_key(cls, raw: Any) -> Any:
        # `data` is written by render_payload (the guide's `{roomId, userId}` object).
        if isinstance(raw, dict) and "data" in raw:
            raise ValueError("data: reserved, the delivered payload sets it")
        return raw


class MeetingEvent(FreeFormEvent):
    """`meeting.*`, `recording.statusUpdate`, `livestreaming.statusUpdate` (RealtimeKit)."""

    room: Room


class OrganizationEvent(FreeFormEvent):
    """Organization events: no room; `organization`, `member`, ... are free-form."""

    room: None = None

    @field_validator("room", mode="before")
    @classmethod
    def _no_room(cls, value: object) -> None:
        if value is not None:
            raise ValueError("organization events carry no room (send null or omit it)")
        return None


# --- the catalog ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EventType:
    """One catalog entry; `payload_model` validates the whole inbound event of that name."""

    name: str
    scope: Scope
    description: str
    payload_model: type[EventBase]

    def public(self) -> dict[str, str]:
        """The entry as served by `GET /v1/event-types`."""
        return {"name": self.name, "scope": self.scope.value, "description": self.description}


def _room(name: str, description: str, model: type[EventBase]) -> EventType:
    return EventType(name, Scope.ROOM, description, model)


def _org(name: str, description: str) -> EventType:
    return EventType(name, Scope.ORGANIZATION, description, OrganizationEvent)


CATALOG: dict[str, EventType] = {
    t.name: t
    for t in (
        # CollabKit rooms
        _room("participant.joined", "A user came online in a room", ParticipantEvent),
        _room("participant.left", "A user went offline", ParticipantEvent),
        _room("session.started", "A new session started (first user joined)", SessionStartedEvent),
        _room("session.closed", "A session ended (last user left)", SessionClosedEvent),
        _room("user.created", "A new user was added to a room", UserEvent),
        _room("user.updated", "A user's fields changed", UserEvent),
        _room("user.deleted", "A user was removed", UserEvent),
        # RealtimeKit meetings
        _room("meeting.started", "A meeting started in a room", MeetingEvent),
        _room("meeting.ended", "A meeting ended", MeetingEvent),
        _room("meeting.participantJoined", "A participant joined a meeting", MeetingEvent),
        _room("meeting.participantLeft", "A participant left a meeting", MeetingEvent),
        _room("meeting.chatSynced", "A meeting's chat messages were synced", MeetingEvent),
        _room("recording.statusUpdate", "A meeting recording changed status", MeetingEvent),
        _room("livestreaming.statusUpdate", "A meeting livestream changed status", MeetingEvent),
        _room("meeting.transcript", "A meeting transcript is available", MeetingEvent),
        _room("meeting.summary", "A meeting summary is available", MeetingEvent),
        # Organizations
        _org("organization.created", "An organization was created"),
        _org("organization.updated", "An organization's settings changed"),
        _org("organization.deleted", "An organization was deleted"),
        _org("member.added", "A member was added to the organization"),
        _org("member.removed", "A member was removed from the organization"),
        _org("member.role_updated", "A member's role changed"),
        _org("invite.created", "An invitation to the organization was sent"),
        _org("invite.accepted", "An invitation was accepted"),
        _org("invite.cancelled", "An invitation was cancelled"),
        _org("oauth_app.created", "An OAuth app was created"),
        _org("oauth_app.revoked", "An OAuth app was revoked"),
        _org("webhook.created", "A webhook was created"),
        _org(
            "webhook.disabled",
            "A webhook was disabled by the platform (its endpoint answered 410, or stopped"
            " succeeding), with the reason",
        ),
    )
}


def event_names(scope: Scope | str | None = None) -> list[str]:
    """Catalog names in catalog order, optionally only those of one scope."""
    return [n for n, t in CATALOG.items() if scope is None or t.scope == scope]


def unknown_events(names: list[str] | tuple[str, ...]) -> list[str]:
    """The names not in the catalog, in the order given, each once."""
    return list(dict.fromkeys(n for n in names if n not in CATALOG))


def _parse_timestamp(value: object) -> datetime:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("must be ISO 8601, e.g. 2026-05-29T10:06:00.000Z") from None
    elif isinstance(value, datetime):
        parsed = value
    else:
        raise ValueError("must be an ISO 8601 date-time string")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        # A naive time is ambiguous across producers' machines; make them say which zone.
        raise ValueError("must include a UTC offset, e.g. 'Z'")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range") from None
