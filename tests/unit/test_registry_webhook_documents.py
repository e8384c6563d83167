"""A page of webhooks is built straight from the rows (`shown_webhook`, `ok_document`); it
must say exactly what the `Webhook` model would, byte for byte."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic_core import to_json

from services.registry.webhooks.models import Webhook, WebhookListData, WebhookRow
from services.registry.webhooks.records import public_webhook, shown_webhook

texts = st.text(max_size=20)
moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]),
)  # fmt: skip
rows = st.builds(
    WebhookRow,
    id=st.uuids(),
    organization_id=st.uuids(),
    name=st.none() | texts,
    url=texts.map(lambda t: "https://example.com/" + t),
    secret_ciphertext=st.none() | texts,
    events=st.lists(texts, max_size=4),
    room_id=st.none() | texts,
    enabled=st.booleans(),
    disabled_reason=st.none() | texts,
    retry_schedule=st.none() | st.lists(st.integers(1, 86_400), max_size=10),
    revision=st.integers(1, 10),
    created_at=moments,
    updated_at=moments,
    previous_secret_ciphertext=st.none() | texts,
    previous_secret_until=st.none() | moments,
    headers_ciphertext=st.none() | texts,
    ordering=st.sampled_from(["none", "room"]),
    send_traceparent=st.booleans(),
)
headers = st.dictionaries(texts, texts, max_size=3)


@settings(max_examples=300)
@given(row=rows, headers=headers)
def test_a_row_shows_as_the_webhook_model_would(row: WebhookRow, headers: dict) -> None:
    assert shown_webhook(row, headers) == public_webhook(row, headers).model_dump(mode="json")


@settings(max_examples=100)
@given(page=st.lists(st.tuples(rows, headers), max_size=5), cursor=st.none() | texts)
def test_a_page_serializes_to_the_same_bytes_as_the_model(page: list, cursor: str | None) -> None:
    documents = [shown_webhook(row, h) for row, h in page]
    models = [public_webhook(row, h) for row, h in page]
    built = to_json({"webhooks": documents, "next_cursor": cursor}).decode()
    assert built == WebhookListData(webhooks=models, next_cursor=cursor).model_dump_json()


def test_the_document_names_every_field_of_the_model_in_its_order() -> None:
    now = datetime.now(UTC)
    row = WebhookRow(
        id=uuid.uuid4(), organization_id=uuid.uuid4(), name=None, url="https://example.com",
        secret_ciphertext=None, events=["participant.joined"], room_id=None, enabled=True,
        disabled_reason=None, retry_schedule=None, revision=1, created_at=now, updated_at=now,
    )  # fmt: skip
    assert list(shown_webhook(row, {})) == list(Webhook.model_fields)
