"""The body a customer receives, and valid events for producers.

Pure: stdlib and pydantic only. Fanout renders the body once with `render_payload`: compact
JSON that `JSON.stringify(JSON.parse(body))` reproduces byte for byte, so receivers that
re-serialize the parsed body (the CollabKit webhooks guide's Express example) still verify
the signature.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from pydantic_core import to_json

from shared.events.catalog import EventBase
from shared.events.ingress import InvalidEvent, parse_event
from shared.jsjson import to_js_json


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 UTC with exactly milliseconds and `Z`, as JavaScript's `toISOString()`."""
    if moment.tzinfo is UTC:  # as every parsed event holds it: no conversion to make
        return moment.isoformat(timespec="milliseconds").removesuffix("+00:00") + "Z"
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

    Read straight from the model's fields, as `model_dump(exclude_unset=True)` would give
    them, at 60 % of its cost (tests/unit/test_event_rendering.py holds the two equal).
    """
    fields = event.__dict__  # the fields' values; getattr on a model is slower
    sent = event.__pydantic_fields_set__
    body: dict[str, Any] = {
        "id": event.id,
        "event": event.event,
        "timestamp": format_timestamp(event.timestamp),
        "organization_id": event.organization_id,
    }
    room, user, users = fields.get("room"), fields.get("user"), fields.get("users")
    if room is not None and "room" in sent:
        body["room"] = _as_sent(room)
    if user is not None and "user" in sent:
        body["user"] = _strip_tokens(_as_sent(user))
    if users is not None and "users" in sent:
        body["users"] = [_strip_tokens(_as_sent(u)) for u in users]
    if event.__pydantic_extra__:  # a free-form event's own fields
        body.update(event.__pydantic_extra__)
    data: dict[str, str] = {}
    if room is not None:
        data["roomId"] = room.id
    if user is not None:
        data["userId"] = user.id
    body["data"] = data
    if _serializer_alike(event):
        return to_json(body)
    return to_js_json(body).encode("utf-8")


def _as_sent(part: BaseModel) -> dict[str, Any]:
    """A payload object (room, user) as received: the fields it was sent with, in the model's
    order, then its extra ones."""
    sent = part.__pydantic_fields_set__
    fields = {k: v for k, v in part.__dict__.items() if k in sent}
    if part.__pydantic_extra__:
        fields.update(part.__pydantic_extra__)
    return fields


# What pydantic's serializer (in Rust) prints exactly as JSON.stringify does: strings (the
# same escapes, every code point checked), integers, booleans and null, in objects and arrays;
# not floats (another layout), nor keys that are array indices (JavaScript puts them first).
_SCALARS = frozenset({str, int, bool, type(None)})


def _serializer_alike(event: EventBase) -> bool:
    """True when every value the body holds beyond the catalog's own fields (the payload
    objects' extra fields, and a free-form event's) is such, under keys that do not start
    with a digit (array indices among them)."""
    fields = event.__dict__  # the fields' values; getattr on a model is slower
    parts = [event, fields.get("room"), fields.get("user"), *(fields.get("users") or ())]
    for part in parts:
        if part is not None and part.__pydantic_extra__ and not _alike(part.__pydantic_extra__):
            return False
    return True


def _alike(value: Any) -> bool:
    if type(value) in _SCALARS:
        return True
    if type(value) is dict:
        for key, item in value.items():
            if key[:1].isdigit() or not (type(item) in _SCALARS or _alike(item)):
                return False
        return True
    if type(value) is list:
        return all(type(item) in _SCALARS or _alike(item) for item in value)
    return False


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
