"""Routing one event message and decoding registry records (pure decisions)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from services.fanout.index import WebhookIndex
from services.fanout.registry_feed import apply_change
from services.fanout.routing import Rejected, Routed, dlq_headers, route
from shared.events import build_event, parse_event, render_payload
from shared.kafka import dumps
from shared.messages import WebhookRecord

NOW = datetime(2026, 5, 29, 10, 6, 30, 123000, tzinfo=UTC)
ORG = str(uuid.uuid4())
HOOK_1, HOOK_2 = sorted(str(uuid.uuid4()) for _ in range(2))


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


def joined_event() -> bytes:
    user = {"id": "user_ada", "name": "Ada", "token": "tok_secret_ada"}
    event = build_event(
        event="participant.joined",
        organization_id=ORG,
        room={"id": "room_1", "name": "Design review"},
        user=user,
        now=NOW,
    )
    return dumps(event)


def test_one_request_per_matching_webhook_sharing_one_rendered_body_without_tokens():
    index = WebhookIndex()
    index.apply(record(HOOK_1))
    index.apply(record(HOOK_2))
    raw = joined_event()
    outcome = route(raw, index, now=NOW)
    assert isinstance(outcome, Routed)
    assert [r.webhook_id for r in outcome.requests] == [HOOK_1, HOOK_2]
    body = render_payload(parse_event(raw)).decode()
    for request in outcome.requests:
        assert request.body == body
        assert request.delivery_id == str(
            uuid.uuid5(uuid.UUID(request.webhook_id), request.event_id)
        )
        assert request.created_at == NOW
    assert "token" not in json.loads(body)["user"]
    assert "tok_secret_ada" not in body


def test_an_event_nobody_subscribed_to_makes_no_request():
    outcome = route(joined_event(), WebhookIndex(), now=NOW)
    assert isinstance(outcome, Routed) and outcome.requests == []


@pytest.mark.parametrize(
    ("value", "reason_part", "reason_class"),
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
def test_invalid_messages_are_rejected_with_a_reason(value, reason_part, reason_class):
    outcome = route(value, WebhookIndex(), now=NOW)
    assert isinstance(outcome, Rejected)
    assert reason_part in outcome.reason
    assert outcome.reason_class == reason_class


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
        (f"workflow:{HOOK_1}".encode(), b"{}", "ignored", False),
        (f"webhook:{HOOK_2}".encode(), dumps(record(HOOK_1).model_dump(mode="json")), "invalid",
         False),
        (f"webhook:{HOOK_1}".encode(), b"{not json", "invalid", False),
        (None, b"{}", "invalid", False),
        (b"garbage", b"{}", "invalid", False),
    ],
)  # fmt: skip
def test_registry_records_are_applied_ignored_or_skipped(key, value, outcome, held):
    index = WebhookIndex()
    assert apply_change(index, key, value) == outcome
    assert (HOOK_1 in index) is held


def test_a_registry_tombstone_removes_and_a_stale_record_is_counted():
    index = WebhookIndex()
    key = f"webhook:{HOOK_1}".encode()
    apply_change(index, key, dumps(record(HOOK_1, revision=3).model_dump(mode="json")))
    stale = dumps(record(HOOK_1, revision=2, enabled=False).model_dump(mode="json"))
    assert apply_change(index, key, stale) == "stale"
    assert apply_change(index, key, None) == "removed"
    assert len(index) == 0
