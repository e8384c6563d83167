import json
import random
import shutil
import struct
import subprocess
from datetime import UTC, datetime, timedelta, timezone

import pydantic_core
import pytest

from shared.events import (
    CATALOG,
    MAX_EVENT_BYTES,
    MAX_REASON_CHARS,
    EventBase,
    InvalidEvent,
    MeetingEvent,
    OrganizationEvent,
    ParticipantEvent,
    Scope,
    SessionClosedEvent,
    SessionStartedEvent,
    UserEvent,
    build_event,
    escape_unstorable,
    event_names,
    nested_deeper_than,
    parse_event,
    render_payload,
    sample_event,
    unknown_events,
)
from shared.events.ingress import _parse_checked, _parse_plain
from shared.failures import storable_text, unstorable_at
from shared.jsjson import to_js_json

NOW = datetime(2026, 5, 29, 10, 6, tzinfo=UTC)
ROOM = {"id": "c3003c93-60cf-4184-b85f-20be14d26dac", "name": "Design review", "plan": "pro"}
USER = {"id": "user-001", "name": "Zoé", "token": "ck_live_secret", "color": "#ff0"}

ROOM_EVENTS = [
    "participant.joined",
    "participant.left",
    "session.started",
    "session.closed",
    "user.created",
    "user.updated",
    "user.deleted",
]
MEETING_EVENTS = [
    "meeting.started",
    "meeting.ended",
    "meeting.participantJoined",
    "meeting.participantLeft",
    "meeting.chatSynced",
    "recording.statusUpdate",
    "livestreaming.statusUpdate",
    "meeting.transcript",
    "meeting.summary",
]
ORGANIZATION_EVENTS = [
    "organization.created",
    "organization.updated",
    "organization.deleted",
    "member.added",
    "member.removed",
    "member.role_updated",
    "invite.created",
    "invite.accepted",
    "invite.cancelled",
    "oauth_app.created",
    "oauth_app.revoked",
    "webhook.created",
    "webhook.disabled",
]

JS_ROUNDTRIP = (
    "const fs = require('fs');"
    "process.stdout.write(JSON.stringify(JSON.parse(fs.readFileSync(0, 'utf8'))));"
)


def js_roundtrip(body: bytes) -> bytes:
    """What a Node receiver gets from `JSON.stringify(JSON.parse(body))`."""
    node = shutil.which("node")
    assert node, "node must be on PATH: byte identity with JavaScript is checked for real"
    return subprocess.run(
        [node, "-e", JS_ROUNDTRIP], input=body, capture_output=True, check=True
    ).stdout


def envelope(event: str, **payload) -> dict:
    return {
        "id": "evt_1",
        "event": event,
        "timestamp": "2026-05-29T10:06:00.000Z",
        "organization_id": "org_1",
        **payload,
    }


ROOM_EXAMPLES = {
    "participant.joined": envelope("participant.joined", room=ROOM, user=USER),
    "participant.left": envelope("participant.left", room=ROOM, user=USER),
    "session.started": envelope("session.started", room=ROOM),
    "session.closed": envelope("session.closed", room=ROOM, users=[USER, {"id": "user-002"}]),
    "user.created": envelope("user.created", room={"id": ROOM["id"]}, user=USER),
    "user.updated": envelope("user.updated", room={"id": ROOM["id"]}, user=USER),
    "user.deleted": envelope("user.deleted", room={"id": ROOM["id"]}, user=USER),
}
ROOM_MODELS = {
    "participant.joined": ParticipantEvent,
    "participant.left": ParticipantEvent,
    "session.started": SessionStartedEvent,
    "session.closed": SessionClosedEvent,
    "user.created": UserEvent,
    "user.updated": UserEvent,
    "user.deleted": UserEvent,
}


def expected_model(name: str) -> type[EventBase]:
    if name in MEETING_EVENTS:
        return MeetingEvent
    if name in ORGANIZATION_EVENTS:
        return OrganizationEvent
    return ROOM_MODELS[name]


def rendered(raw: dict) -> dict:
    return json.loads(render_payload(parse_event(raw)))


# --- the catalog ---------------------------------------------------------------------------


def test_catalog_holds_exactly_the_seed_events_in_order():
    assert list(CATALOG) == ROOM_EVENTS + MEETING_EVENTS + ORGANIZATION_EVENTS


@pytest.mark.parametrize("name", list(CATALOG))
def test_every_catalog_event_has_scope_description_and_model(name):
    spec = CATALOG[name]
    assert spec.name == name
    assert spec.scope in (Scope.ROOM, Scope.ORGANIZATION)
    assert spec.description
    assert issubclass(spec.payload_model, EventBase)
    assert spec.payload_model is expected_model(name)
    assert spec.public() == {
        "name": name,
        "scope": spec.scope.value,
        "description": spec.description,
    }


def test_event_names_filters_by_scope():
    assert event_names() == list(CATALOG)
    assert event_names(Scope.ROOM) == ROOM_EVENTS + MEETING_EVENTS
    assert event_names("organization") == ORGANIZATION_EVENTS


def test_unknown_events_lists_each_unknown_once_in_order():
    names = ["x.y", "participant.joined", "Participant.Joined", "x.y", "webhook.created"]
    assert unknown_events(names) == ["x.y", "Participant.Joined"]
    assert unknown_events([]) == []


# --- parsing and rendering the room events -------------------------------------------------


@pytest.mark.parametrize("name", ROOM_EVENTS)
def test_room_event_parses_from_bytes_str_and_dict_alike(name):
    raw = ROOM_EXAMPLES[name]
    event = parse_event(json.dumps(raw).encode())
    assert type(event) is ROOM_MODELS[name]
    assert event.scope is Scope.ROOM
    assert event.room_id == ROOM["id"]
    assert parse_event(json.dumps(raw)) == event == parse_event(raw)


@pytest.mark.parametrize("name", ROOM_EVENTS)
def test_room_event_renders_data_with_room_and_user_ids(name):
    body = rendered(ROOM_EXAMPLES[name])
    expected = {"roomId": ROOM["id"]}
    if name != "session.started" and name != "session.closed":
        expected["userId"] = "user-001"
    assert body["data"] == expected
    assert body["id"] == "evt_1"
    assert body["event"] == name
    assert body["organization_id"] == "org_1"


def test_render_orders_keys_envelope_then_payload_then_data():
    body = render_payload(parse_event(ROOM_EXAMPLES["participant.joined"]))
    keys = list(json.loads(body))
    assert keys == ["id", "event", "timestamp", "organization_id", "room", "user", "data"]
    assert body.startswith(b'{"id":"evt_1","event":"participant.joined","timestamp":')


def test_render_keeps_extra_room_and_user_fields():
    body = rendered(ROOM_EXAMPLES["participant.joined"])
    assert body["room"] == ROOM
    assert body["user"] == {"id": "user-001", "name": "Zoé", "color": "#ff0"}


def test_render_strips_every_token_under_user_and_users():
    nested = {**USER, "devices": [{"id": "d1", "token": "t1"}], "auth": {"token": "t2"}}
    single = rendered(envelope("participant.joined", room=ROOM, user=nested))
    many = rendered(envelope("session.closed", room=ROOM, users=[nested, USER]))
    assert single["user"] == {
        "id": "user-001",
        "name": "Zoé",
        "color": "#ff0",
        "devices": [{"id": "d1"}],
        "auth": {},
    }
    assert many["users"] == [single["user"], {"id": "user-001", "name": "Zoé", "color": "#ff0"}]
    assert b"token" not in render_payload(
        parse_event(envelope("session.closed", room=ROOM, users=[nested]))
    )


@pytest.mark.parametrize(
    ("sent", "delivered"),
    [
        ("2026-05-29T10:06:00Z", "2026-05-29T10:06:00.000Z"),
        ("2026-05-29T10:06:00.000Z", "2026-05-29T10:06:00.000Z"),
        ("2026-05-29T12:06:00.123456+02:00", "2026-05-29T10:06:00.123Z"),
        ("2026-05-29T10:06:00.9999+00:00", "2026-05-29T10:06:00.999Z"),
    ],
)
def test_timestamp_is_delivered_in_utc_with_milliseconds(sent, delivered):
    raw = {**ROOM_EXAMPLES["session.started"], "timestamp": sent}
    event = parse_event(raw)
    assert event.timestamp.tzinfo is UTC
    assert rendered(raw)["timestamp"] == delivered


# --- meeting and organization events -------------------------------------------------------


@pytest.mark.parametrize("name", MEETING_EVENTS)
def test_meeting_event_keeps_free_form_fields(name):
    raw = envelope(name, room=ROOM, meeting={"id": "m1", "status": "LIVE"}, participant={"id": "p"})
    event = parse_event(raw)
    assert type(event) is MeetingEvent
    body = rendered(raw)
    assert list(body) == [
        "id", "event", "timestamp", "organization_id", "room", "meeting", "participant", "data",
    ]  # fmt: skip
    assert body["meeting"] == {"id": "m1", "status": "LIVE"}
    assert body["data"] == {"roomId": ROOM["id"]}


@pytest.mark.parametrize("name", ORGANIZATION_EVENTS)
def test_organization_event_has_no_room_and_keeps_free_form_fields(name):
    raw = envelope(name, room=None, organization={"id": "org_1", "name": "Acme"})
    event = parse_event(raw)
    assert type(event) is OrganizationEvent
    assert event.scope is Scope.ORGANIZATION
    assert event.room_id is None
    body = rendered(raw)
    assert list(body) == ["id", "event", "timestamp", "organization_id", "organization", "data"]
    assert body["data"] == {}
    assert rendered({k: v for k, v in raw.items() if k != "room"}) == body


def test_free_form_event_user_gets_user_id_and_loses_its_token():
    body = rendered(envelope("member.added", member={"role": "ADMIN"}, user=USER))
    assert body["data"] == {"userId": "user-001"}
    assert "token" not in body["user"]


# --- what we refuse ------------------------------------------------------------------------

GOOD = ROOM_EXAMPLES["participant.joined"]
GOOD_TEXT = json.dumps(GOOD, ensure_ascii=False).encode()


DEEPER = "event is nested deeper than 64 levels"


def text_with(field: str, value: object) -> bytes:
    """GOOD as the JSON text a producer sends (NUL and surrogates as escapes), `field` set."""
    return json.dumps({**GOOD, field: value}).encode()


BAD_INPUTS = [
    ("not-json", b"{nope", "event is not JSON"),
    ("json-array", b"[1, 2]", "event must be a JSON object, not an array"),
    ("json-string", b'"participant.joined"', "event must be a JSON object, not a string"),
    ("invalid-utf8-in-id", b'{"id": "\xff"}', "id: not valid UTF-8 (byte 8)"),
    ("invalid-utf8-in-a-name", GOOD_TEXT.replace(b"Zo\xc3\xa9", b"Zo\xe9"), "user.name: not valid"),
    ("invalid-utf8-in-a-key", b'{"r\xff": 1}', "not valid UTF-8 (byte 3)"),
    ("invalid-utf8-and-not-json", b'{"id": "\xff', "event is not valid UTF-8 (byte 8)"),
    ("no-event", {k: v for k, v in GOOD.items() if k != "event"}, "event: field required"),
    ("event-not-string", {**GOOD, "event": 7}, "event: input should be a valid string"),
    ("unknown-event", {**GOOD, "event": "foo.bar"}, "event: unknown event 'foo.bar'"),
    (
        "missing-organization-id",
        {k: v for k, v in GOOD.items() if k != "organization_id"},
        "organization_id: field required",
    ),
    ("empty-organization-id", {**GOOD, "organization_id": ""}, "organization_id: string should"),
    ("organization-id-wrong-type", {**GOOD, "organization_id": 42}, "organization_id: input"),
    ("empty-id", {**GOOD, "id": ""}, "id: string should have at least 1 character"),
    ("long-id", {**GOOD, "id": "x" * 201}, "id: string should have at most 200 characters"),
    ("room-event-without-room", {k: v for k, v in GOOD.items() if k != "room"}, "room: field"),
    ("room-event-null-room", {**GOOD, "room": None}, "room: input should be"),
    ("room-without-id", {**GOOD, "room": {"name": "x"}}, "room.id: field required"),
    ("user-id-wrong-type", {**GOOD, "user": {"id": 5}}, "user.id: input should be a valid string"),
    (
        "session-closed-user-without-id",
        envelope("session.closed", room=ROOM, users=[USER, {"name": "b"}]),
        "users[1].id: field required",
    ),
    (
        "organization-event-with-room",
        envelope("member.added", room={"id": "r1"}),
        "room: organization events carry no room",
    ),
    ("unknown-top-level-key", {**GOOD, "roomId": "r1"}, "roomId: extra inputs are not permitted"),
    (
        "reserved-data-key",
        envelope("meeting.started", room=ROOM, data={"x": 1}),
        "data: reserved",
    ),
    ("naive-timestamp", {**GOOD, "timestamp": "2026-05-29T10:06:00"}, "timestamp: must include"),
    ("bad-timestamp", {**GOOD, "timestamp": "yesterday"}, "timestamp: must be ISO 8601"),
    ("numeric-timestamp", {**GOOD, "timestamp": 1780000000}, "timestamp: must be an ISO 8601"),
    ("nan", json.dumps({**GOOD, "room": {**ROOM, "score": float("nan")}}), "room.score: NaN"),
    ("infinity", b'{"event": "session.started", "x": -Infinity}', "x: NaN and Infinity"),
    ("overflowing-float", b'{"event": "session.started", "x": 1e999}', "x: NaN and Infinity"),
    ("huge-int", {**GOOD, "user": {**USER, "n": [2**53]}}, "user.n[0]: integer outside"),
    ("lone-surrogate", b'{"id": "\\ud800"}', "id: string contains a lone UTF-16 surrogate"),
    ("nul-in-id", text_with("id", "ev\x00x"), "id: string contains NUL (U+0000)"),
    (
        "nul-in-organization-id",
        text_with("organization_id", "o\x00"),
        "organization_id: string contains NUL",
    ),
    (
        "surrogate-in-organization-id",
        text_with("organization_id", "\udfff"),
        "organization_id: string contains a lone",
    ),
    ("nul-in-event", text_with("event", "participant.joined\x00"), "event: string contains NUL"),
    (
        "nul-in-timestamp",
        text_with("timestamp", "2026-05-29T10:06:00Z\x00"),
        "timestamp: string contains NUL",
    ),
    ("nul-in-room-id", {**GOOD, "room": {"id": "r\x00"}}, "room.id: string contains NUL"),
    ("nul-in-user-id", {**GOOD, "user": {"id": "\x00"}}, "user.id: string contains NUL"),
    (
        "surrogate-in-users-id",
        envelope("session.closed", room=ROOM, users=[USER, {"id": "\ud83d"}]),
        "users[1].id: string contains a lone",
    ),
    ("nul-in-a-key", {**GOOD, "room": {**ROOM, "a\x00": 1}}, "room: key contains NUL"),
    ("surrogate-in-a-key", b'{"event": "x", "m": {"\\udc00": 1}}', "m: key contains a lone"),
    (
        "users-not-a-list",
        envelope("session.closed", room=ROOM, users=5),
        "users: input should be a valid list",
    ),
    ("oversize", b" " * 1_000_001, "event too large: 1000001 bytes"),
    ("too-deep", {**GOOD, "room": {**ROOM, "x": json.loads("[" * 80 + "]" * 80)}}, "room.x"),
    ("too-deep-text", text_with("x", json.loads("[" * 65 + "]" * 65)), "x[0][0][0]: nested deeper"),
    ("10000-deep", b"[" * 10_000 + b"]" * 10_000, DEEPER),
    ("100000-deep-unterminated", b"[" * 100_000, DEEPER),
    ("deep-objects", b'{"a":' * 10_000 + b"1" + b"}" * 10_000, DEEPER),
]


@pytest.mark.parametrize(
    ("raw", "reason"), [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS]
)
def test_bad_input_is_refused_with_a_reason_naming_the_field(raw, reason):
    with pytest.raises(InvalidEvent) as caught:
        parse_event(raw)
    assert caught.value.reason.startswith(reason), caught.value.reason
    assert str(caught.value) == caught.value.reason
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (b"{nope", "not_json"),
        (b'{"id": "\xff', "not_json"),
        (b" " * 1_000_001, "too_large"),
        (b"[" * 100_000, "too_deep"),
        ({**GOOD, "event": "foo.bar"}, "unknown_event"),
        (text_with("id", "ev\x00x"), "unstorable_text"),
        (b'{"id": "\xff"}', "unstorable_text"),
        ({**GOOD, "users": 5}, "invalid_field"),
    ],
)
def test_each_refusal_carries_a_short_kind_for_metrics(raw, kind):
    with pytest.raises(InvalidEvent) as caught:
        parse_event(raw)
    assert caught.value.kind == kind


def test_nul_and_lone_surrogates_in_free_text_are_delivered_as_visible_escapes():
    user = {**USER, "name": "Ada\x00Lovelace", "tags": ["\ud800", {"x": "\udfff!"}]}
    meeting = envelope("meeting.started", room={**ROOM, "name": "\x00"}, user=user, note="a\x00")
    body = render_payload(parse_event(json.dumps(meeting).encode()))
    delivered = json.loads(body)
    assert delivered["user"]["name"] == "Ada\\u0000Lovelace"  # a backslash and u0000
    assert delivered["user"]["tags"] == ["\\ud800", {"x": "\\udfff!"}]
    assert (delivered["room"]["name"], delivered["note"]) == ("\\u0000", "a\\u0000")
    assert unstorable_at(body.decode()) is None
    assert js_roundtrip(body) == body
    assert (delivered["id"], delivered["organization_id"]) == ("evt_1", "org_1")


def test_escaping_free_text_leaves_the_callers_document_as_it_was():
    raw = envelope("participant.joined", room=ROOM, user={**USER, "name": "a\x00"})
    before = json.dumps(raw)
    event = parse_event(raw)
    assert json.dumps(raw) == before
    assert json.loads(render_payload(event))["user"]["name"] == "a\\u0000"


@pytest.mark.parametrize("text", ["a\x00b", "\ud800", "x\udfff\x00y", "Zoé 🎉", ""])
def test_free_text_is_escaped_exactly_as_storable_text_writes_it(text):
    assert escape_unstorable(text) == storable_text(text)


def nested(levels: int) -> str:
    """A participant.joined event (level 1) whose room holds arrays down to `levels` levels."""
    inner = "[" * (levels - 2) + "]" * (levels - 2)
    return json.dumps({**GOOD, "room": {**ROOM, "x": json.loads(inner)}})


def test_sixty_four_levels_are_accepted_and_sixty_five_refused_as_text_or_dict():
    assert parse_event(nested(64)) and parse_event(json.loads(nested(64)))
    for raw in (nested(65), json.loads(nested(65))):
        with pytest.raises(InvalidEvent, match="nested deeper than 64 levels"):
            parse_event(raw)


@pytest.mark.parametrize(
    ("text", "deeper"),
    [
        ("[]" * 1000, False),  # many brackets, never more than one open
        ('["' + "[" * 100 + '"]', False),  # brackets inside a string do not count
        ('["\\"' + "[" * 100 + '"]', False),  # nor after an escaped quote
        ('["\\\\"' + ", [" * 70, True),  # an escaped backslash ends no string
        ("[" * 65 + "]" * 65, True),
        ("[" * 64 + "]" * 64, False),
        ("{" + '"a":{' * 64 + "}" * 65, True),
        ("[" * 65 + '"' + '\\"' * 200_000, True),  # unterminated: still one linear pass
        ('"' * 200_000 + "[" * 65, True),  # 100,000 empty strings, then the brackets
        ('"' * 200_001 + "[" * 65, False),  # an unterminated string holds them (not JSON)
    ],
)
def test_nesting_is_measured_outside_strings_in_one_pass(text, deeper):
    assert nested_deeper_than(text, 64) is deeper


def test_size_cap_is_configurable_and_counts_utf8_bytes():
    text = json.dumps(GOOD, ensure_ascii=False)
    size = len(text.encode())
    assert parse_event(text, max_bytes=size)
    with pytest.raises(InvalidEvent, match=f"event too large: {size} bytes"):
        parse_event(text, max_bytes=size - 1)


def test_reason_is_capped_and_never_echoes_values():
    raw = envelope("session.closed", room=ROOM, users=[{"name": "secret-name"}] * 100)
    with pytest.raises(InvalidEvent) as caught:
        parse_event(raw)
    assert len(caught.value.reason) <= MAX_REASON_CHARS
    assert "secret-name" not in caught.value.reason


# --- byte identity with JavaScript ---------------------------------------------------------


def test_rendered_body_is_exactly_what_json_stringify_prints():
    user = {
        **USER,
        "bio": 'Café "quoted" \\ back\tslash\n日本語 🎉👩‍💻 \u2028\u2029 \x00\x1f\x7f </script>',
        "stats": {"score": 1.0, "ratio": 0.1, "tiny": 1e-7, "small": 0.000001, "big": 1e21},
        "more": [-0.0, 1e16, 2.5e-5, 123456.789, 2**53 - 1, -(2**53 - 1), True, None],
        "ordering": {"b": 1, "10": 2, "2": 3, "01": 4, "4294967295": 5, "a": {"1": [{}]}},
    }
    raw = envelope(
        "participant.joined", room={**ROOM, "nested": {"deep": {"list": [[], {}]}}}, user=user
    )
    body = render_payload(parse_event(json.dumps(raw).encode()))
    assert js_roundtrip(body) == body
    assert "\u2028".encode() in body  # JSON.stringify leaves U+2028 raw; so do we
    assert b'"score":1,' in body


def test_number_layout_matches_javascript_for_many_floats():
    rng = random.Random(20260529)
    floats = [m * 10.0**e for e in range(-30, 30) for m in (1, 1.5, 9.999999999999998)]
    while len(floats) < 3000:
        (x,) = struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))
        if x == x and abs(x) != float("inf"):
            floats.append(x)
    text = to_js_json(floats)
    assert js_roundtrip(json.dumps(floats).encode()).decode() == text


def test_rendering_is_deterministic():
    raw = ROOM_EXAMPLES["session.closed"]
    assert render_payload(parse_event(raw)) == render_payload(parse_event(json.dumps(raw)))


# --- building events for producers ---------------------------------------------------------


def test_build_event_fills_id_and_timestamp_and_round_trips():
    built = build_event(
        event="participant.joined", organization_id="org_1", room=ROOM, user=USER, now=NOW
    )
    assert built["timestamp"] == "2026-05-29T10:06:00.000Z"
    assert len(built["id"]) == 36
    event = parse_event(json.dumps(built))
    assert (event.id, event.room_id, event.user_id) == (built["id"], ROOM["id"], "user-001")


def test_build_event_keeps_a_given_id_and_converts_now_to_utc():
    now = datetime(2026, 5, 29, 12, 6, 0, 250_000, tzinfo=timezone(timedelta(hours=2)))
    built = build_event(
        event="member.added",
        organization_id="org_1",
        room=None,
        event_id="evt_42",
        now=now,
        extra={"member": {"id": "u", "role": "ADMIN"}},
    )
    assert built == {
        "id": "evt_42",
        "event": "member.added",
        "timestamp": "2026-05-29T10:06:00.250Z",
        "organization_id": "org_1",
        "room": None,
        "member": {"id": "u", "role": "ADMIN"},
    }


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"event": "nope"}, "event: unknown event 'nope'"),
        ({"room": None}, "room: input should be"),
        ({"now": datetime(2026, 5, 29)}, "timestamp: now must be timezone-aware"),
        ({"extra": {"id": "x"}}, "id: pass it as its own argument"),
        ({"extra": {"typo": 1}}, "typo: extra inputs are not permitted"),
    ],
)
def test_build_event_refuses_what_would_not_parse(kwargs, reason):
    args = {
        "event": "participant.joined",
        "organization_id": "org_1",
        "room": ROOM,
        "user": USER,
        "now": NOW,
        **kwargs,
    }
    with pytest.raises(InvalidEvent) as caught:
        build_event(**args)
    assert caught.value.reason.startswith(reason), caught.value.reason


# --- the one-pass parse --------------------------------------------------------------------


@pytest.mark.parametrize("name", event_names())
def test_a_plain_event_of_every_name_is_parsed_in_one_pass_as_the_checked_path_parses_it(name):
    raw = json.dumps(sample_event(name, organization_id="org_1", now=NOW)).encode()
    event = _parse_plain(raw, MAX_EVENT_BYTES)
    assert event is not None, "a plain event must not need the checked path"
    checked = _parse_checked(raw, MAX_EVENT_BYTES)
    assert type(event) is type(checked) and event == checked
    assert event.model_fields_set == checked.model_fields_set
    assert render_payload(event) == render_payload(checked)


@pytest.mark.parametrize(
    ("number", "one_pass"),
    [
        (1_780_000_000_123_456, True),  # microseconds since the epoch: 16 digits, safe
        (-(2**53 - 1), True),
        (2**53, False),  # 16 digits beyond the safe range: refused, by the checked path
        (0.1234567890123456, False),  # 16 digits of a fraction
        (12345678901234567, False),  # 17 digits
    ],
)
def test_a_number_of_sixteen_digits_takes_one_pass_only_when_javascript_holds_it(number, one_pass):
    raw = json.dumps({**sample_event("participant.joined", organization_id="org_1", now=NOW),
                      "room": {"id": "r", "sent_us": number}}).encode()  # fmt: skip
    assert (_parse_plain(raw, MAX_EVENT_BYTES) is not None) is one_pass


@pytest.mark.parametrize("raw", [c[1] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_every_bad_input_sent_as_bytes_is_refused_for_the_checked_paths_reason(raw):
    if isinstance(raw, dict):
        raw = json.dumps(raw).encode()
    elif isinstance(raw, str):
        raw = raw.encode()
    with pytest.raises(InvalidEvent) as checked:
        _parse_checked(raw, MAX_EVENT_BYTES)
    assert _parse_plain(raw, MAX_EVENT_BYTES) is None
    with pytest.raises(InvalidEvent) as caught:
        parse_event(raw)
    assert (caught.value.reason, caught.value.kind) == (checked.value.reason, checked.value.kind)


@pytest.mark.parametrize(
    "extra",
    [
        {"n": -5, "b": True, "z": None, "s": 'é\u2028\x1f"\\', "list": [1, "x", {"k": False}]},
        {"f": 1.0, "g": 1e21},
        {"1": "array indices first", "a": 2},
        {"nested": {"a": {"10": 1, "2": 2}}},
    ],
    ids=["scalars-and-nesting", "floats", "index-keys", "nested-index-keys"],
)
def test_the_body_is_what_json_stringify_prints_whichever_serializer_writes_it(extra):
    # Bodies of strings, integers, booleans and null are written by pydantic's serializer,
    # the others by to_js_json: the same bytes either way.
    event = parse_event(envelope("meeting.started", room={**ROOM, **extra}, **extra))
    body = render_payload(event)
    assert body == to_js_json(json.loads(body)).encode()
    assert js_roundtrip(body) == body


def test_pydantics_serializer_escapes_every_code_point_as_the_javascript_printer_does():
    # Every code point but the surrogates (a rendered body holds none: they are escaped).
    text = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    assert pydantic_core.to_json(text) == to_js_json(text).encode()
