"""A run request from its bytes, or the reason it goes to the DLQ."""

from __future__ import annotations

import json
import uuid

import pytest

from services.workflow_runner.run_requests import MAX_REASON_CHARS, read_request
from shared.messages import WorkflowRunRequested, run_id_for

WORKFLOW, ORG = str(uuid.uuid4()), str(uuid.uuid4())


def request(**fields) -> dict:
    body = {
        "run_id": run_id_for(WORKFLOW, "evt-1"),
        "workflow_id": WORKFLOW,
        "version": 1,
        "organization_id": ORG,
        "room_id": "room-1",
        "event_id": "evt-1",
        "event": {"event": "session.started", "data": {}},
        "created_at": "2026-12-01T08:00:00Z",
    }
    return body | fields


def test_a_valid_request_is_read() -> None:
    read = read_request(json.dumps(request()).encode())
    assert isinstance(read, WorkflowRunRequested) and read.event_id == "evt-1"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "no value"),
        (b"not json", "Invalid JSON"),
        (b"\xff\xfe", "Invalid JSON"),
        (b"[" * 10_000, "recursion limit"),
        (b"[1, 2]", "should be an object"),
        (json.dumps(request(run_id="run-1")).encode(), "run_id: String should match pattern"),
        (json.dumps(request(workflow_id="w\x00")).encode(), "workflow_id"),
        (json.dumps(request(organization_id=5)).encode(), "organization_id"),
        (json.dumps(request(event_id="evt\x00-1")).encode(), "event_id: Value error, holds U+0000"),
        (json.dumps(request(event_id="evt\ud800")).encode(), "Invalid JSON"),
        (json.dumps(request(event_id="e" * 201)).encode(), "event_id"),
        (json.dumps(request(version=2**40)).encode(), "version"),
        (json.dumps(request(event=5)).encode(), "event"),
        (json.dumps(request(extra=1)).encode(), "extra"),
    ],
)
def test_what_is_not_a_valid_request_gets_a_short_reason(raw, reason: str) -> None:
    read = read_request(raw)
    assert isinstance(read, str)
    assert read.startswith("invalid run request: ") and reason in read
    assert len(read) <= MAX_REASON_CHARS and read.isprintable()
