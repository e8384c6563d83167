"""Routing one event message and decoding registry records (pure decisions)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.fanout.index import Subscriptions
from services.fanout.registry_feed import apply_change
from services.fanout.routing import Rejected, Routed, request_values, route
from shared.dead_letters import dlq_headers
from shared.events import build_event, parse_event, render_payload
from shared.kafka import dumps
from shared.messages import DeliveryRequested, WebhookRecord, WorkflowRecord, WorkflowRunRequested

NOW = datetime(2026, 5, 29, 10, 6, 30, 123000, tzinfo=UTC)
ORG, OTHER_ORG = str(uuid.uuid4()), str(uuid.uuid4())
# Fixed, in ascending order: they are in the parametrized tests' ids, which pytest-xdist's
# workers must collect alike.
HOOK_1, HOOK_2 = "1b6f3c2a-4d5e-4f60-8a71-92b3c4d5e6f1", "8e2d4c6b-0a1f-4e3d-9c5b-7a6f8e9d0c12"
FLOW_1, FLOW_2, FLOW_3 = (
    "2c7a9e1f-5b3d-4a6c-8e0f-1d2b3c4a5e61",
    "5d8b0f2a-6c4e-4b7d-9f1a-2e3c4d5b6f72",
    "9f1c3e5a-7d6b-4c8e-a02b-3f4d5e6c7a83",
)
TOKEN = "tok_secret_ada"


def record(webhook_id: str, **changes: object) -> WebhookRecord:
    fields = {
        "id": webhook_id,
        "organization_id": ORG,
        "name": None,
        "url": "https://example.com/hook",
        "events": ["participant.joined"],
        "room_id": None,
        "enabled": True,
        "revision": 1,
        "created_at": NOW,
        "updated_at": NOW,
    }
    return WebhookRecord(**{**fields, **changes})


def workflow(workflow_id: str, **changes: object) -> WorkflowRecord:
    fields = {
        "id": workflow_id,
        "organization_id": ORG,
        "name": "greet",
        "events": ["participant.joined"],
        "room_id": None,
        "enabled": True,
        "language": "ts",
        "version": 1,
        "revision": 1,
        "created_at": NOW,
        "updated_at": NOW,
    }
    return WorkflowRecord(**{**fields, **changes})


def indexes_of(*records: WebhookRecord | WorkflowRecord) -> Subscriptions:
    indexes = Subscriptions()
    for item in records:
        index = indexes.webhooks if isinstance(item, WebhookRecord) else indexes.workflows
        index.apply(item)
    return indexes


def requests_of(outcome: Routed) -> list[DeliveryRequested]:
    """The delivery requests as fanout produces them: the record values, read back."""
    return [DeliveryRequested.model_validate_json(value) for _, value in request_values(outcome)]


def joined_event() -> bytes:
    user = {"id": "user_ada", "name": "Ada", "token": TOKEN}
    event = build_event(
        event="participant.joined",
        organization_id=ORG,
        room={"id": "room_1", "name": "Design review"},
        user=user,
        now=NOW,
    )
    return dumps(event)


def test_one_request_per_matching_webhook_sharing_one_rendered_body_without_tokens():
    indexes = indexes_of(record(HOOK_1), record(HOOK_2))
    raw = joined_event()
    outcome = route(raw, indexes, record_stamp=NOW, oldest=NOW - timedelta(days=30))
    assert isinstance(outcome, Routed)
    assert [r.webhook_id for r in requests_of(outcome)] == [HOOK_1, HOOK_2]
    body = render_payload(parse_event(raw)).decode()
    for request in requests_of(outcome):
        assert request.body == body
        assert request.delivery_id == str(
            uuid.uuid5(uuid.UUID(request.webhook_id), request.event_id)
        )
        assert request.created_at == NOW
    assert "token" not in json.loads(body)["user"]
    assert TOKEN not in body
    assert outcome.runs == []


def joined_with(**fields: object) -> bytes:
    """A participant.joined event as a producer sends it (NUL and surrogates as JSON escapes)."""
    return json.dumps({**json.loads(joined_event()), **fields}).encode()


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"id": "ev\x00x"}, "id: string contains NUL (U+0000)"),
        ({"organization_id": ORG + "\x00"}, "organization_id: string contains NUL"),
        ({"id": "ev\ud800"}, "id: string contains a lone UTF-16 surrogate"),
    ],
)
def test_an_event_whose_id_holds_nul_or_a_surrogate_makes_no_request(fields, reason):
    outcome = route(
        joined_with(**fields),
        indexes_of(record(HOOK_1), workflow(FLOW_1)),
        record_stamp=NOW,
        oldest=NOW - timedelta(days=30),
    )
    assert isinstance(outcome, Rejected)
    assert (outcome.reason[: len(reason)], outcome.kind) == (reason, "unstorable_text")


def test_nul_in_a_name_reaches_webhooks_and_workflows_as_a_visible_escape():
    user = {"id": "user_ada", "name": "Ada\x00", "token": TOKEN}
    outcome = route(
        joined_with(user=user),
        indexes_of(record(HOOK_1), workflow(FLOW_1)),
        record_stamp=NOW,
        oldest=NOW - timedelta(days=30),
    )
    assert isinstance(outcome, Routed)
    [request], [run] = requests_of(outcome), outcome.runs
    assert json.loads(request.body)["user"]["name"] == "Ada\\u0000"
    assert run.event["user"]["name"] == "Ada\\u0000"
    assert "\x00" not in request.model_dump_json() + run.model_dump_json()


def test_an_event_nobody_subscribed_to_makes_no_request():
    outcome = route(
        joined_event(), Subscriptions(), record_stamp=NOW, oldest=NOW - timedelta(days=30)
    )
    assert isinstance(outcome, Routed) and outcome.requests == [] and outcome.runs == []


@pytest.mark.parametrize(
    ("value", "reason_part", "kind"),
    [
        (None, "null", "empty"),
        (b"", "empty", "empty"),
        (b"{nope", "not JSON", "not_json"),
        (b"[1]", "must be a JSON object", "not_json"),
        (dumps({"event": "room.exploded"}), "unknown event", "unknown_event"),
        (dumps({"id": "e", "event": "session.started", "timestamp": "2026-05-29T10:06:00Z",
                "room": {"id": "r"}}), "organization_id", "invalid_field"),
    ],
)  # fmt: skip
def test_invalid_messages_are_rejected_with_a_reason(value, reason_part, kind):
    outcome = route(
        value,
        indexes_of(record(HOOK_1), workflow(FLOW_1)),
        record_stamp=NOW,
        oldest=NOW - timedelta(days=30),
    )
    assert isinstance(outcome, Rejected)
    assert reason_part in outcome.reason
    assert outcome.kind == kind


def test_dlq_headers_keep_the_originals_and_say_why_and_where_from():
    headers = dlq_headers(
        "event: unknown event 'x'",
        topic="ns.events",
        partition=2,
        offset=41,
        original=[("content-type", b"application/json"), ("rh-error", b"old")],
    )
    assert headers == [
        ("content-type", b"application/json"),
        ("rh-error", b"event: unknown event 'x'"),
        ("rh-topic", b"ns.events"),
        ("rh-partition", b"2"),
        ("rh-offset", b"41"),
    ]


@pytest.mark.parametrize(
    ("key", "value", "outcome", "held"),
    [
        (f"webhook:{HOOK_1}".encode(), dumps(record(HOOK_1).model_dump(mode="json")), "applied",
         True),
        (f"webhook:{HOOK_1}".encode(), None, "ignored", False),  # tombstone of an unknown hook
        (f"workflow:{HOOK_1}".encode(), b"{}", "invalid", False),
        (f"room:{HOOK_1}".encode(), b"{}", "ignored", False),
        (f"workflow:{HOOK_1}".encode(), dumps(record(HOOK_1).model_dump(mode="json")), "invalid",
         False),  # a webhook record under a workflow key
        (f"webhook:{HOOK_2}".encode(), dumps(record(HOOK_1).model_dump(mode="json")), "invalid",
         False),
        (f"webhook:{HOOK_1}".encode(), b"{not json", "invalid", False),
        (None, b"{}", "invalid", False),
        (b"garbage", b"{}", "invalid", False),
    ],
)  # fmt: skip
def test_registry_records_are_applied_ignored_or_skipped(key, value, outcome, held):
    indexes = Subscriptions()
    assert apply_change(indexes, key, value) == outcome
    assert (HOOK_1 in indexes.webhooks) is held
    assert len(indexes.workflows) == 0


def test_a_registry_tombstone_removes_and_a_stale_record_is_counted():
    indexes = Subscriptions()
    key = f"webhook:{HOOK_1}".encode()
    apply_change(indexes, key, dumps(record(HOOK_1, revision=3).model_dump(mode="json")))
    stale = dumps(record(HOOK_1, revision=2, enabled=False).model_dump(mode="json"))
    assert apply_change(indexes, key, stale) == "stale"
    assert apply_change(indexes, key, None) == "removed"
    assert len(indexes.webhooks) == 0


def wf_json(workflow_id: str, **changes: object) -> bytes:
    return dumps(workflow(workflow_id, **changes).model_dump(mode="json"))


@pytest.mark.parametrize(
    ("key", "value", "outcome", "held"),
    [
        (f"workflow:{FLOW_1}".encode(), wf_json(FLOW_1), "applied", True),
        (f"workflow:{FLOW_1}".encode(), None, "ignored", False),
        (f"workflow:{FLOW_2}".encode(), wf_json(FLOW_1), "invalid", False),
        (f"workflow:{FLOW_1}".encode(), wf_json(FLOW_1)[:-1], "invalid", False),
        (f"webhook:{FLOW_1}".encode(), wf_json(FLOW_1), "invalid", False),
    ],
)  # fmt: skip
def test_workflow_records_are_applied_ignored_or_skipped(key, value, outcome, held):
    indexes = Subscriptions()
    assert apply_change(indexes, key, value) == outcome
    assert (FLOW_1 in indexes.workflows) is held
    assert len(indexes.webhooks) == 0


def test_a_workflow_tombstone_removes_and_a_stale_record_keeps_the_current_version():
    indexes = Subscriptions()
    key = f"workflow:{FLOW_1}".encode()
    assert apply_change(indexes, key, wf_json(FLOW_1, revision=3, version=2)) == "applied"
    assert apply_change(indexes, key, wf_json(FLOW_1, revision=2, version=1)) == "stale"
    held = indexes.workflows.get(FLOW_1)
    assert held is not None and held.version == 2
    assert apply_change(indexes, key, None) == "removed"
    assert len(indexes.workflows) == 0


def keys_anywhere(value: object) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in keys_anywhere(v)}
    if isinstance(value, list):
        return {k for v in value for k in keys_anywhere(v)}
    return set()


def test_one_run_request_per_matching_workflow_with_the_rendered_payload_without_tokens():
    indexes = indexes_of(workflow(FLOW_1, version=4), workflow(FLOW_2, room_id="room_1"))
    raw = joined_event()
    outcome = route(raw, indexes, record_stamp=NOW, oldest=NOW - timedelta(days=30))
    assert isinstance(outcome, Routed)
    assert outcome.requests == []
    event = parse_event(raw)
    payload = json.loads(render_payload(event))
    assert [r.workflow_id for r in outcome.runs] == [FLOW_1, FLOW_2]
    assert [r.version for r in outcome.runs] == [4, 1]
    for run in outcome.runs:
        assert run.run_id == str(uuid.uuid5(uuid.UUID(run.workflow_id), event.id))
        assert uuid.UUID(run.run_id).version == 5
        assert (run.organization_id, run.room_id, run.event_id) == (ORG, "room_1", event.id)
        assert run.event == payload
        assert run.event["data"] == {"roomId": "room_1", "userId": "user_ada"}
        assert run.created_at == NOW
        assert "token" not in keys_anywhere(run.event)
        assert TOKEN not in run.model_dump_json()


def test_webhooks_and_workflows_on_one_event_each_get_theirs_from_one_rendering():
    indexes = indexes_of(record(HOOK_1), record(HOOK_2), workflow(FLOW_1), workflow(FLOW_3))
    outcome = route(joined_event(), indexes, record_stamp=NOW, oldest=NOW - timedelta(days=30))
    assert isinstance(outcome, Routed)
    assert [r.webhook_id for r in outcome.requests] == [HOOK_1, HOOK_2]
    assert [r.workflow_id for r in outcome.runs] == [FLOW_1, FLOW_3]
    body = requests_of(outcome)[0].body
    assert all(run.event == json.loads(body) for run in outcome.runs)
    # on the wire, a run request's event is the webhook body's document, byte for byte
    for run in outcome.runs:
        assert dumps(run.model_dump(mode="json")["event"]).decode() == body


@pytest.mark.parametrize(
    ("case", "workflows", "expected"),
    [
        ("unscoped", [workflow(FLOW_1, events=["member.added"])], [FLOW_1]),
        ("room-scoped never", [workflow(FLOW_1, events=["member.added"], room_id="room_1")], []),
        ("disabled never", [workflow(FLOW_1, events=["member.added"], enabled=False)], []),
        ("other account never", [workflow(FLOW_1, events=["member.added"],
                                          organization_id=OTHER_ORG)], []),
        ("other event never", [workflow(FLOW_1)], []),
    ],
)  # fmt: skip
def test_organization_events_run_only_unscoped_workflows_with_no_room(case, workflows, expected):
    member = {"id": "user_grace", "role": "ADMIN"}
    raw = dumps(
        build_event(event="member.added", organization_id=ORG, now=NOW, extra={"member": member})
    )
    outcome = route(raw, indexes_of(*workflows), record_stamp=NOW, oldest=NOW - timedelta(days=30))
    assert isinstance(outcome, Routed)
    assert [r.workflow_id for r in outcome.runs] == expected, case
    for run in outcome.runs:
        assert run.room_id is None
        assert run.event["member"] == member and run.event["data"] == {}


def test_a_workflow_whose_record_bumps_version_gets_the_new_version_in_later_runs():
    indexes = Subscriptions()
    key = f"workflow:{FLOW_1}".encode()
    apply_change(indexes, key, wf_json(FLOW_1, version=1, revision=1))
    first = route(joined_event(), indexes, record_stamp=NOW, oldest=NOW - timedelta(days=30))
    apply_change(indexes, key, wf_json(FLOW_1, version=2, revision=2))
    second = route(joined_event(), indexes, record_stamp=NOW, oldest=NOW - timedelta(days=30))
    assert isinstance(first, Routed) and isinstance(second, Routed)
    assert [r.version for r in first.runs] == [1]
    assert [r.version for r in second.runs] == [2]
    assert first.runs[0].run_id != second.runs[0].run_id  # two events, two runs


def test_a_re_read_event_gives_the_same_run_id():
    indexes = indexes_of(workflow(FLOW_1))
    raw = joined_event()
    oldest = NOW - timedelta(days=30)
    first = route(raw, indexes, record_stamp=NOW, oldest=oldest)
    again = route(raw, indexes, record_stamp=NOW + timedelta(seconds=5), oldest=oldest)
    assert isinstance(first, Routed) and isinstance(again, Routed)
    assert first.runs[0].run_id == again.runs[0].run_id
    assert first.stamp == again.stamp == first.runs[0].created_at == again.runs[0].created_at


def test_run_requests_round_trip_through_their_wire_format():
    outcome = route(
        joined_event(),
        indexes_of(workflow(FLOW_1, version=7)),
        record_stamp=NOW,
        oldest=NOW - timedelta(days=30),
    )
    assert isinstance(outcome, Routed)
    [run] = outcome.runs
    wire = dumps(run.model_dump(mode="json"))
    assert WorkflowRunRequested.model_validate_json(wire) == run
