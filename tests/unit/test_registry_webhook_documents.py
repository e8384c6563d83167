"""A page of webhooks is put together from the documents Postgres renders, the headers spliced
in (`listed_document`, `list_document`); it must say exactly what the `Webhook` model would,
byte for byte. (That Postgres renders the rest as the model would is a contract test:
tests/integration/test_registry_contract_webhooks.py; here the fake's rendering stands in.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from services.registry.webhooks.models import WebhookListData, WebhookRow
from services.registry.webhooks.records import list_document, listed_document, public_webhook
from tests.support.registry_fakes import listed

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
def test_a_listed_webhook_with_its_headers_says_what_the_model_would(
    row: WebhookRow, headers: dict
) -> None:
    document = listed_document(listed(row), headers)
    assert document == public_webhook(row, headers).model_dump_json()


@settings(max_examples=100)
@given(page=st.lists(st.tuples(rows, headers), max_size=5), cursor=st.none() | texts)
def test_a_page_serializes_to_the_same_bytes_as_the_model(page: list, cursor: str | None) -> None:
    documents = [listed_document(listed(row), h) for row, h in page]
    models = [public_webhook(row, h) for row, h in page]
    built = list_document(documents, cursor)
    assert built == WebhookListData(webhooks=models, next_cursor=cursor).model_dump_json()
