"""The event catalog, the inbound event models, and the body a customer receives.

Pure: stdlib and pydantic only. Every service validates events with `parse_event` and the
catalog here; fanout renders the customer body once with `render_payload`.

Inbound (topic `roomhooks.events`): `{id, event, timestamp, organization_id, room, user?,
users?}` plus free-form fields for meeting and organization events. Rendered (the HTTP body):
`{id, event, timestamp, organization_id, room?, user?, users?, ...extra, data}` as compact JSON
that `JSON.stringify(JSON.parse(body))` reproduces byte for byte, so receivers that re-serialize
the parsed body (the CollabKit webhooks guide's Express example) still verify the signature.

Text Postgres cannot hold (NUL, a lone UTF-16 surrogate, written as JSON escapes):
- in an identifier (`id`, `event`, `timestamp`, `organization_id`, `room.id`, `user.id`,
  `users[i].id`) or an object key, the event is refused naming the field: ids derive delivery
  and run ids and route the event, so rewriting one would alias another;
- in any other string it is delivered as the visible six characters `\\u0000` / `\\ud800` (a
  backslash and five characters, as `shared.failures.storable_text` writes them), so the body
  stays storable in text and jsonb alike and JSON.stringify still reproduces it byte for byte.
Bytes that are not UTF-8 are not JSON text: refused, naming the field that holds them. A
document nested deeper than `MAX_DEPTH` is refused before it is parsed, at any depth.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from shared.jsjson import to_js_json

MAX_EVENT_BYTES = 1_000_000
MAX_ID_LENGTH = 200
MAX_DEPTH = 64
MAX_REASON_CHARS = 500
# Integers beyond this lose precision in a JavaScript Number, so JS would print other digits.
JS_MAX_SAFE_INTEGER = 2**53 - 1
# What Postgres text (and jsonb) refuse in a string: NUL and lone surrogates.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# Invalid UTF-8 bytes, as `surrogateescape` decodes them.
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")
# A JSON string, or an unterminated one running to the end: always matches at a quote, so
# removing strings stays linear however the quotes and backslashes are arranged.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
# json.loads recurses once per level: under this many brackets in all it stays far from the
# interpreter's recursion limit (1000), and the walk after it measures the depth; above it the
# text is scanned first, so a deep document is refused before it is parsed.
_PARSE_SAFE_BRACKETS = 256
# The fields that identify or route an event: never rewritten, so refused when unstorable.
_IDENTIFIERS = frozenset(
    {("id",), ("event",), ("timestamp",), ("organization_id",), ("room", "id"), ("user", "id")}
)


class Scope(StrEnum):
    ROOM = "room"
    ORGANIZATION = "organization"


class InvalidEvent(ValueError):
    """An event we cannot accept; `reason` names the field, e.g. `room.id: field required`.

    Permanent: the same bytes will always fail, so consumers send them to the DLQ.
    The reason names fields and at most a short event name, never other values: safe to log.
    `kind` is a short label for metrics: not_json, too_large, too_deep, unknown_event,
    unstorable_text (NUL, a lone surrogate or invalid UTF-8 where it may not be rewritten),
    invalid_field.
    """

    def __init__(self, reason: str, *, kind: str = "invalid_field") -> None:
        self.reason = _cap(reason)
        self.kind = kind
        super().__init__(self.reason)


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
    """An inbound event. `id` is the producer's idempotency key: a re-sent event keeps it.

    Build instances with `parse_event`; the subclass is chosen by the catalog entry of `event`.
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
        room = getattr(self, "room", None)
        return room.id if room is not None else None

    @property
    def user_id(self) -> str | None:
        user = getattr(self, "user", None)
        return user.id if user is not None else None


class ParticipantEvent(EventBase):
    """`participant.joined` / `participant.left`."""

    room: Room
    user: User


class SessionStartedEvent(EventBase):
    room: Room


class SessionClosedEvent(EventBase):
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
    )
}


def event_names(scope: Scope | str | None = None) -> list[str]:
    """Catalog names in catalog order, optionally only those of one scope."""
    return [n for n, t in CATALOG.items() if scope is None or t.scope == scope]


def unknown_events(names: list[str] | tuple[str, ...]) -> list[str]:
    """The names not in the catalog, in the order given, each once."""
    return list(dict.fromkeys(n for n in names if n not in CATALOG))


# --- parsing -------------------------------------------------------------------------------


def parse_event(
    raw: bytes | str | dict[str, Any], *, max_bytes: int = MAX_EVENT_BYTES
) -> EventBase:
    """Validate one inbound event; raise `InvalidEvent` naming the field that is wrong.

    Bytes must be UTF-8 JSON and, like str, at most `max_bytes` long and nested at most
    `MAX_DEPTH` deep. Besides the per-event schema, the whole document must be something
    JavaScript round-trips exactly: no NaN or Infinity, no integers beyond 2**53 - 1. NUL and
    lone surrogates are refused in identifiers and keys, and escaped elsewhere (see above).
    """
    doc = _decode(raw, max_bytes) if isinstance(raw, bytes | str) else raw
    if not isinstance(doc, dict):
        raise InvalidEvent(f"event must be a JSON object, not {_json_type(doc)}", kind="not_json")
    if not _is_plain(doc, 0):
        doc = _checked(doc, (), 0)  # again, with paths: refuse naming the field, or escape
    name = doc.get("event")
    if name is None:
        raise InvalidEvent("event: field required")
    if not isinstance(name, str):
        raise InvalidEvent("event: input should be a valid string")
    spec = CATALOG.get(name)
    if spec is None:
        raise InvalidEvent(f"event: unknown event {name[:100]!r}", kind="unknown_event")
    try:
        return spec.payload_model.model_validate(doc)
    except ValidationError as exc:
        raise InvalidEvent(_describe(exc)) from None


def _decode(raw: bytes | str, max_bytes: int) -> object:
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise InvalidEvent(f"event too large: {size} bytes (limit {max_bytes})", kind="too_large")
    bad_byte = None
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            # Parse anyway (each bad byte a lone surrogate) only to name the field holding it.
            bad_byte, text = exc.start, raw.decode("utf-8", "surrogateescape")
    else:
        text = raw
    brackets = text.count("[") + text.count("{")
    if brackets > _PARSE_SAFE_BRACKETS and nested_deeper_than(text, MAX_DEPTH):
        raise InvalidEvent(f"event is nested deeper than {MAX_DEPTH} levels", kind="too_deep")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        if bad_byte is not None:
            reason = f"event is not valid UTF-8 (byte {bad_byte})"
            raise InvalidEvent(reason, kind="not_json") from None
        where = f"line {exc.lineno} column {exc.colno}"
        raise InvalidEvent(f"event is not JSON: {exc.msg} at {where}", kind="not_json") from None
    if bad_byte is not None:
        loc = _loc(_path_of_bad_bytes(doc, ()) or ())
        raise InvalidEvent(
            _at((loc,) if loc else (), f"not valid UTF-8 (byte {bad_byte})"),
            kind="unstorable_text",
        )
    return doc


def nested_deeper_than(text: str, limit: int) -> bool:
    """True when JSON `text` opens more than `limit` arrays or objects inside one another.

    Linear and without recursion, so no depth can exhaust a stack. Most events open fewer
    brackets in all than the limit, and one count of each settles them; only the others have
    their strings removed and their brackets counted.
    """
    if text.count("[") + text.count("{") <= limit:
        return False
    if '\\"' in text:  # an escaped quote: find where each string ends
        outside = _JSON_STRING.sub("", text)
    else:  # every quote opens or closes a string: the even parts are outside them
        outside = "".join(text.split('"')[::2])
    depth = 0
    for ch in _NOT_BRACKET.sub("", outside):
        if ch in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def _path_of_bad_bytes(value: object, path: tuple[str | int, ...]) -> tuple[str | int, ...] | None:
    """Where the first string holding an invalid byte is (`surrogateescape`d), if anywhere."""
    if isinstance(value, str):
        return path if _ESCAPED_BYTE.search(value) else None
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        if isinstance(key, str) and _ESCAPED_BYTE.search(key):
            return path
        found = _path_of_bad_bytes(item, (*path, key))
        if found is not None:
            return found
    return None


def _is_plain(value: Any, depth: int) -> bool:
    """True when `value` breaks no rule and holds nothing to escape: the common case, checked
    without building paths (`_checked` walks again with paths when this says False)."""
    if isinstance(value, str):
        return "\x00" not in value if value.isascii() else _UNSTORABLE.search(value) is None
    if isinstance(value, dict):
        if depth >= MAX_DEPTH:
            return False
        for key, item in value.items():
            if not isinstance(key, str) or not _is_plain(key, depth):
                return False
            if not _is_plain(item, depth + 1):
                return False
        return True
    if isinstance(value, list):
        if depth >= MAX_DEPTH:
            return False
        return all(_is_plain(item, depth + 1) for item in value)
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, int):
        return abs(value) <= JS_MAX_SAFE_INTEGER
    if isinstance(value, float):
        return math.isfinite(value)
    return False


def _checked(value: Any, path: tuple[str | int, ...], depth: int) -> Any:
    """`value` checked for what JSON.parse/JSON.stringify would not reproduce exactly (or
    cannot encode), with unstorable text escaped where that is allowed: the same object when
    nothing changed, a copy otherwise (the caller's document is never modified)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        if _UNSTORABLE.search(value) is None:
            return value
        if _is_identifier(path):
            raise InvalidEvent(_at(path, _unstorable_reason(value)), kind="unstorable_text")
        return escape_unstorable(value)
    if isinstance(value, int):
        if abs(value) > JS_MAX_SAFE_INTEGER:
            limit = f"±{JS_MAX_SAFE_INTEGER}"
            raise InvalidEvent(
                _at(path, f"integer outside JavaScript's safe range ({limit}); send a string")
            )
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidEvent(_at(path, "NaN and Infinity are not valid JSON numbers"))
        return value
    if isinstance(value, dict | list) and depth >= MAX_DEPTH:  # the document itself is level 1
        raise InvalidEvent(_at(path[:4], f"nested deeper than {MAX_DEPTH} levels"), kind="too_deep")
    if isinstance(value, dict):
        copy: dict[str, Any] | None = None
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidEvent(_at(path, "object keys must be strings"))
            if _UNSTORABLE.search(key):
                reason = _unstorable_reason(key).replace("string", "key", 1)
                raise InvalidEvent(_at(path, reason), kind="unstorable_text")
            checked = _checked(item, (*path, key), depth + 1)
            if checked is not item:
                if copy is None:
                    copy = dict(value)
                copy[key] = checked
        return value if copy is None else copy
    if isinstance(value, list):
        items: list[Any] | None = None
        for index, item in enumerate(value):
            checked = _checked(item, (*path, index), depth + 1)
            if checked is not item:
                if items is None:
                    items = list(value)
                items[index] = checked
        return value if items is None else items
    raise InvalidEvent(_at(path, f"{type(value).__name__} is not a JSON value"))


def _is_identifier(path: tuple[str | int, ...]) -> bool:
    if path in _IDENTIFIERS:
        return True
    return len(path) == 3 and path[0] == "users" and path[2] == "id"


def _unstorable_reason(text: str) -> str:
    if "\x00" in text:
        return "string contains NUL (U+0000), which an identifier may not hold"
    return "string contains a lone UTF-16 surrogate"


def escape_unstorable(text: str) -> str:
    """`text` with NUL and lone surrogates written as visible `\\u0000` / `\\ud800` escapes
    (the same characters `shared.failures.storable_text` writes)."""
    return _UNSTORABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


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


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        message = error["msg"].removeprefix("Value error, ")
        message = message[:1].lower() + message[1:]
        parts.append(_at(error["loc"], message))
    return "; ".join(parts)


def _loc(path: tuple[str | int, ...]) -> str:
    """`users[0].id` for ('users', 0, 'id'); empty for the document itself."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f"{'.' if out else ''}{str(part)[:40]}"
    return out


def _at(path: tuple[str | int, ...], message: str) -> str:
    loc = _loc(path)
    return f"{loc}: {message}" if loc else message


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number")


def _cap(text: str) -> str:
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 3] + "..."


# --- rendering -----------------------------------------------------------------------------


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 UTC with exactly milliseconds and `Z`, as JavaScript's `toISOString()`."""
    if moment.tzinfo is None:
        raise ValueError("timestamp must be timezone-aware")
    utc = moment.astimezone(UTC).replace(tzinfo=None)
    return utc.isoformat(timespec="milliseconds") + "Z"


def render_payload(event: EventBase) -> bytes:
    """The exact body a customer receives for `event` (UTF-8, compact JSON).

    Keys: id, event, timestamp, organization_id (ours, useful for multi-org receivers), then
    room, user, users when present, then any free-form fields as received, then `data` =
    `{roomId?, userId?}` for the CollabKit webhooks guide's examples. Every `token` under
    `user`/`users` is removed. `JSON.stringify(JSON.parse(body))` gives the same bytes, so the body
    is also the canonical form signed in `X-Webhook-Signature`.
    """
    fields = event.model_dump(
        mode="python",
        exclude_unset=True,
        exclude={"id", "event", "timestamp", "organization_id"},
    )
    body: dict[str, Any] = {
        "id": event.id,
        "event": event.event,
        "timestamp": format_timestamp(event.timestamp),
        "organization_id": event.organization_id,
    }
    for key in ("room", "user", "users"):
        value = fields.pop(key, None)
        if value is not None:
            body[key] = _strip_tokens(value) if key != "room" else value
    body.update(fields)
    data: dict[str, str] = {}
    if event.room_id is not None:
        data["roomId"] = event.room_id
    if event.user_id is not None:
        data["userId"] = event.user_id
    body["data"] = data
    return to_js_json(body).encode("utf-8")


def _strip_tokens(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_tokens(v) for k, v in value.items() if k != "token"}
    if isinstance(value, list):
        return [_strip_tokens(v) for v in value]
    return value


# --- producing -----------------------------------------------------------------------------


def build_event(
    *,
    event: str,
    organization_id: str,
    room: dict[str, Any] | None = None,
    user: dict[str, Any] | None = None,
    users: list[dict[str, Any]] | None = None,
    event_id: str | None = None,
    now: datetime,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A valid inbound event as a JSON-ready dict, for producers (e.g. `roomhooks publish`).

    Fills `id` with a random UUID when `event_id` is None and `timestamp` from `now` (which
    must be timezone-aware). Raises `InvalidEvent` when the result would not parse.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise InvalidEvent("timestamp: now must be timezone-aware")
    body: dict[str, Any] = {
        "id": event_id if event_id is not None else str(uuid.uuid4()),
        "event": event,
        "timestamp": format_timestamp(now),
        "organization_id": organization_id,
        "room": room,
    }
    if user is not None:
        body["user"] = user
    if users is not None:
        body["users"] = users
    for key, value in (extra or {}).items():
        if key in body:
            raise InvalidEvent(f"{key}: pass it as its own argument, not in extra")
        body[key] = value
    parse_event(body)
    return body
