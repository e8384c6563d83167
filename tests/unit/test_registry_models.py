"""Request bodies: strict, and every error names its field as the API spells it."""

from __future__ import annotations

from dataclasses import fields

import pytest
from pydantic import ValidationError

from services.registry.http import validation_error
from services.registry.keys import bearer_token, hash_token, new_token
from services.registry.webhooks.models import WebhookInput, WebhookPatch, WebhookRow
from services.registry.webhooks.repository import _COLUMNS
from services.registry.workflows.models import WorkflowInput, WorkflowPatch
from shared.events import format_timestamp
from shared.pagination import InvalidCursor, decode_cursor, encode_cursor

CONTEXT = {"http_hosts": frozenset({"127.0.0.1"})}


def fields_of(body: dict, model=WebhookInput) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body, context=CONTEXT)
    return {d["field"]: d["message"] for d in validation_error(caught.value).details}


def test_seed_000_body_is_accepted_with_room_id_in_camel_case():
    body = WebhookInput.model_validate(
        {
            "url": "https://api.example.com/collab-webhook",
            "events": ["participant.joined", "participant.left"],
            "roomId": "c3003c93-60cf-4184-b85f-20be14d26dac",
        },
        context=CONTEXT,
    )
    assert body.room_id == "c3003c93-60cf-4184-b85f-20be14d26dac"
    assert body.enabled is True and body.name is None


def test_missing_fields_are_named():
    assert fields_of({}) == {"url": "field required", "events": "field required"}


def test_unknown_fields_are_named_not_ignored():
    errors = fields_of({"url": "https://a.example", "events": ["session.started"], "evnts": []})
    assert errors == {"evnts": "unknown field"}


def test_each_bad_field_is_reported_at_once():
    errors = fields_of({"url": "ftp://a.example", "events": [], "roomId": ""})
    assert set(errors) == {"url", "events", "roomId"}
    assert "ftp" in errors["url"]
    assert "at least one event" in errors["events"]


def test_types_are_not_coerced():
    errors = fields_of(
        {"url": "https://a.example", "events": ["session.started"], "enabled": "yes"}
    )
    assert set(errors) == {"enabled"}


def test_unknown_event_is_named_in_the_error():
    errors = fields_of({"url": "https://a.example", "events": ["participant.joined", "x.y"]})
    assert "x.y" in errors["events"]


def test_patch_needs_at_least_one_field_and_refuses_null_for_required_ones():
    assert "at least one of" in fields_of({}, WebhookPatch)["body"]
    errors = fields_of({"url": None, "events": None, "enabled": None}, WebhookPatch)
    assert set(errors) == {"url", "events", "enabled"}


def test_patch_keeps_explicit_null_room_id_apart_from_absent():
    unscoped = WebhookPatch.model_validate({"roomId": None}, context=CONTEXT)
    untouched = WebhookPatch.model_validate({"enabled": False}, context=CONTEXT)
    assert "room_id" in unscoped.model_fields_set
    assert "room_id" not in untouched.model_fields_set


def test_api_keys_are_random_and_hashed():
    first, second = new_token(), new_token()
    assert first != second and first.startswith("rhk_")
    assert len(hash_token(first)) == 64 and hash_token(first) != first


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer   abc ", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_token_parsing(header, token):
    assert bearer_token(header) == token


def test_cursor_round_trip_and_garbage():
    from datetime import UTC, datetime

    stamp = datetime(2026, 5, 29, 10, 0, 0, 123456, tzinfo=UTC)
    assert decode_cursor(encode_cursor(stamp, "abc")) == (stamp, "abc")
    for bad in ("!!!", "bm90LWEtY3Vyc29y", ""):
        with pytest.raises(InvalidCursor):
            decode_cursor(bad)


def test_timestamps_have_milliseconds_and_z():
    from datetime import UTC, datetime

    assert format_timestamp(datetime(2026, 5, 29, 10, 0, tzinfo=UTC)) == "2026-05-29T10:00:00.000Z"


@pytest.mark.parametrize(
    ("schedule", "needle"),
    [
        ([0], "from 1 to 86400"),
        ([1, 100_000], "from 1 to 86400"),
        ([1] * 11, "at most 10"),
        ([1.5], "integer"),
        ("1,5,30", "list"),
    ],
)
def test_retry_schedule_is_validated_and_named(schedule, needle):
    errors = fields_of(
        {"url": "https://a.example", "events": ["session.started"], "retrySchedule": schedule}
    )
    [(field, message)] = errors.items()
    assert field.startswith("retrySchedule") and needle in message


def test_retry_schedule_may_be_empty_or_null():
    for schedule in ([], None, [10, 60, 600]):
        body = WebhookInput.model_validate(
            {"url": "https://a.example", "events": ["session.started"], "retrySchedule": schedule},
            context=CONTEXT,
        )
        assert body.retry_schedule == schedule


@pytest.mark.parametrize(
    ("model", "body", "field"),
    [
        (
            WebhookInput,
            {"url": "https://a.example", "events": ["session.started"], "name": "a\0"},
            "name",
        ),
        (WebhookPatch, {"roomId": "room\0"}, "roomId"),
        (WorkflowInput, {"name": "n", "events": ["session.started"], "code": "x\0"}, "code"),
        (WorkflowPatch, {"name": "a\0"}, "name"),
    ],
)
def test_text_with_a_nul_character_is_refused_naming_the_field(model, body, field):
    # Postgres text cannot store NUL: this was a 500 when the row was written (found by fuzzing).
    assert field in fields_of(body, model)


def test_the_webhook_columns_read_are_exactly_the_rows_fields():
    # A row is filled from its record's items: a column missing or extra would leave a field
    # unset or an attribute no field names.
    assert [c.strip() for c in _COLUMNS.split(",")] == [f.name for f in fields(WebhookRow)]
