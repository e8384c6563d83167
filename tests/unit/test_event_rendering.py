"""`render_payload` reads the body straight from the model's fields; it must say exactly what
rendering the model's `model_dump(exclude_unset=True)` says, for any event (hypothesis)."""

from __future__ import annotations

from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from shared.events import InvalidEvent, parse_event, render_payload
from shared.events.catalog import EventBase
from shared.events.rendering import _serializer_alike, _strip_tokens, format_timestamp
from shared.jsjson import to_js_json
from shared.kafka import dumps

TEXT = st.text(max_size=6)
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.floats(-1e6, 1e6) | TEXT,
    lambda inner: (
        st.lists(inner, max_size=2)
        | st.dictionaries(st.sampled_from(["token", "a", "0", "b"]), inner, max_size=2)
    ),
    max_leaves=6,
)
EXTRAS = st.dictionaries(st.sampled_from(["x", "token", "2", "metadata"]), VALUES, max_size=2)
NAMES = st.sampled_from([None, "absent", "Standup"])


@st.composite
def parts(draw: st.DrawFn, *, with_name: bool) -> dict[str, Any]:
    part: dict[str, Any] = {"id": draw(st.text(min_size=1, max_size=4)), **draw(EXTRAS)}
    name = draw(NAMES)
    if with_name and name != "absent":
        part["name"] = name
    return part


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(
        st.sampled_from(
            ["participant.joined", "session.started", "session.closed", "user.created",
             "meeting.started", "member.added"]
        )
    )  # fmt: skip
    doc: dict[str, Any] = {
        "id": "evt_1",
        "event": name,
        "timestamp": "2026-05-29T10:06:00.250+02:00",
        "organization_id": "org_1",
    }
    if name == "member.added":
        room = draw(st.sampled_from(["absent", None]))
        if room is None:
            doc["room"] = None
    else:
        doc["room"] = draw(parts(with_name=name != "user.created"))
    if name in ("participant.joined", "user.created"):
        doc["user"] = draw(parts(with_name=False))
    if name == "session.closed":
        doc["users"] = draw(st.lists(parts(with_name=False), max_size=2))
    if name in ("meeting.started", "member.added"):
        for field in ("user", "users"):
            if draw(st.booleans()):
                doc[field] = draw(
                    st.none() | (parts(with_name=False) if field == "user" else
                                 st.lists(parts(with_name=False), max_size=2))
                )  # fmt: skip
        doc.update(draw(st.dictionaries(st.sampled_from(["meeting", "n", "1"]), VALUES)))
    return doc


def dumped_body(event: EventBase) -> bytes:
    """The body by its definition: the model dumped as sent, envelope first, tokens stripped."""
    fields = event.model_dump(
        mode="python", exclude_unset=True, exclude={"id", "event", "timestamp", "organization_id"}
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
    data = {}
    if event.room_id is not None:
        data["roomId"] = event.room_id
    if event.user_id is not None:
        data["userId"] = event.user_id
    body["data"] = data
    return to_js_json(body).encode() if not _serializer_alike(event) else dumps(body)


@settings(max_examples=600)
@given(doc=events())
def test_the_body_is_what_the_dumped_model_renders(doc: dict[str, Any]) -> None:
    try:
        event = parse_event(dumps(doc))
    except InvalidEvent:
        assume(False)
    assert render_payload(event) == dumped_body(event)
