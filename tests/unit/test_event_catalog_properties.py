"""Whatever valid event a producer sends, of any catalog name, the body delivery renders for it
validates against that event's payload schema (hypothesis)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from shared.events import (
    CATALOG,
    FreeFormEvent,
    InvalidEvent,
    OrganizationEvent,
    UserEvent,
    parse_event,
    payload_schema,
    render_payload,
)

VALIDATORS = {
    name: Draft202012Validator(
        payload_schema(spec), format_checker=Draft202012Validator.FORMAT_CHECKER
    )
    for name, spec in CATALOG.items()
}
CHARS = st.one_of(
    st.characters(exclude_categories=()),
    st.sampled_from(["\x00", "\ud800", "\x1f", "\u2028", '"', "\\"]),
)
TEXT = st.text(CHARS, max_size=8)
IDS = st.text(CHARS, min_size=1, max_size=8)
ENVELOPE = {"id", "event", "timestamp", "organization_id", "room", "user", "users", "data"}
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
# Tokens anywhere in a user, which delivery removes at any depth.
USERS = st.fixed_dictionaries(
    {"id": IDS},
    optional={
        "name": TEXT,
        "token": TEXT,
        "profile": st.dictionaries(st.sampled_from(["token", "bio"]), JSON_VALUES, max_size=2),
    },
)
ROOMS = st.fixed_dictionaries({"id": IDS}, optional={"name": TEXT | st.none(), "x": JSON_VALUES})
ROOM_REFS = st.fixed_dictionaries({"id": IDS}, optional={"x": JSON_VALUES})
FREE_FORM = st.dictionaries(TEXT.filter(lambda k: k not in ENVELOPE), JSON_VALUES, max_size=3)
MOMENTS = st.datetimes(
    min_value=datetime(1000, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
)
OFFSETS = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(st.sampled_from(list(CATALOG)))
    model = CATALOG[name].payload_model
    fields = model.model_fields
    moment = draw(MOMENTS).astimezone(draw(OFFSETS))
    doc: dict[str, Any] = {
        "id": draw(IDS),
        "event": name,
        "timestamp": moment.isoformat(),
        "organization_id": draw(IDS),
    }
    if model is OrganizationEvent:
        if draw(st.booleans()):
            doc["room"] = None
    else:
        doc["room"] = draw(ROOM_REFS if model is UserEvent else ROOMS)
    free_form = issubclass(model, FreeFormEvent)
    for key, value in (("user", USERS), ("users", st.lists(USERS, max_size=3))):
        if key in fields and (not free_form or draw(st.booleans())):
            doc[key] = draw(value | st.none()) if free_form else draw(value)
    if free_form:
        doc.update(draw(FREE_FORM))
    return doc


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events())
def test_every_rendered_body_validates_against_its_event_s_schema(doc: dict[str, Any]) -> None:
    try:
        event = parse_event(doc)
    except InvalidEvent:
        assume(False)  # e.g. NUL in an identifier: refused, never delivered
        raise
    body = json.loads(render_payload(event))
    VALIDATORS[doc["event"]].validate(body)
