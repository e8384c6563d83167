"""WebhookService's use cases against the in-memory repository: what it stores, answers and
announces through the outbox."""

from __future__ import annotations

import json
import uuid

import pytest

from services.registry.errors import InvalidChange, NotFound, QuotaExceeded
from services.registry.webhooks.models import WebhookInput, WebhookPatch
from services.registry.webhooks.service import WebhookService
from shared.kafka import Topics
from shared.secrets_box import SecretsBox, generate_key
from tests.support.registry_contracts import T0
from tests.support.registry_fakes import FakeWebhooks

ACCOUNT = str(uuid.uuid4())
OTHER_ACCOUNT = str(uuid.uuid4())
TOPICS = Topics()
BOX = SecretsBox([generate_key()])


def body(**fields) -> WebhookInput:
    return WebhookInput.model_validate(
        {"url": "https://hooks.example.com/in", "events": ["participant.joined"], **fields}
    )


@pytest.fixture
def store() -> FakeWebhooks:
    return FakeWebhooks()


@pytest.fixture
def webhooks(store) -> WebhookService:
    return WebhookService(store, TOPICS, lambda: T0, BOX, quota=2)


async def test_create_answers_the_secret_once_and_stores_it_sealed(webhooks, store):
    created = await webhooks.create(ACCOUNT, body(name="a"))
    [row] = store.rows.values()
    assert len(created.secret) == 64 and created.secret not in row.secret_ciphertext
    assert BOX.open(row.secret_ciphertext) == created.secret
    assert "secret" not in (await webhooks.get(ACCOUNT, created.id)).model_dump()


async def test_create_announces_the_record_and_the_webhook_created_event(webhooks, store):
    created = await webhooks.create(ACCOUNT, body())
    (topic, key, value), (event_topic, event_key, event) = store.outbox
    assert (topic, key) == (TOPICS.registry, f"webhook:{created.id}".encode())
    assert json.loads(value)["revision"] == 1 and created.secret.encode() not in value
    assert (event_topic, event_key) == (TOPICS.events, ACCOUNT.encode())
    assert json.loads(event)["event"] == "webhook.created"


async def test_a_create_over_the_quota_stores_and_announces_nothing(webhooks, store):
    for _ in range(2):
        await webhooks.create(ACCOUNT, body())
    with pytest.raises(QuotaExceeded):
        await webhooks.create(ACCOUNT, body())
    assert len(store.rows) == 2 and len(store.outbox) == 4
    await webhooks.create(OTHER_ACCOUNT, body())


@pytest.mark.parametrize("account", [OTHER_ACCOUNT, "not-a-uuid"], ids=["other", "not-a-uuid"])
async def test_another_accounts_webhook_is_not_found(webhooks, account):
    created = await webhooks.create(ACCOUNT, body())
    with pytest.raises(NotFound):
        await webhooks.get(account, created.id)
    with pytest.raises(NotFound):
        await webhooks.delete(account, created.id)


async def test_a_list_goes_on_from_its_cursor(store):
    webhooks = WebhookService(store, TOPICS, lambda: T0, BOX)
    ids = [(await webhooks.create(ACCOUNT, body())).id for _ in range(3)]
    first = await webhooks.list(ACCOUNT, limit=2, cursor=None)
    rest = await webhooks.list(ACCOUNT, limit=2, cursor=first.next_cursor)
    assert rest.next_cursor is None
    assert sorted(json.loads(w)["id"] for w in [*first.webhooks, *rest.webhooks]) == sorted(ids)


async def test_a_patch_changes_only_what_it_names_and_announces_the_next_revision(webhooks, store):
    created = await webhooks.create(ACCOUNT, body(name="a", retrySchedule=[5]))
    patched = await webhooks.patch(ACCOUNT, created.id, WebhookPatch(name="b"))
    assert (patched.name, patched.retry_schedule, patched.url) == ("b", [5], created.url)
    assert json.loads(store.outbox[-1][2])["revision"] == 2


async def test_a_patch_that_scopes_organization_events_to_a_room_changes_nothing(webhooks, store):
    created = await webhooks.create(ACCOUNT, body(events=["webhook.created"]))
    with pytest.raises(InvalidChange) as refused:
        await webhooks.patch(ACCOUNT, created.id, WebhookPatch.model_validate({"roomId": "r1"}))
    assert refused.value.field == "events"
    assert (await webhooks.get(ACCOUNT, created.id)).room_id is None and len(store.outbox) == 2


async def test_a_disabled_webhook_enabled_again_loses_its_reason(webhooks, store):
    created = await webhooks.create(ACCOUNT, body())
    assert await webhooks.disable(ACCOUNT, created.id, reason="410 Gone") is True
    assert await webhooks.disable(ACCOUNT, created.id, reason="410 Gone") is False
    assert (await webhooks.get(ACCOUNT, created.id)).disabled_reason == "410 Gone"
    enabled = await webhooks.patch(ACCOUNT, created.id, WebhookPatch(enabled=True))
    assert enabled.enabled and enabled.disabled_reason is None
    assert len(store.outbox) == 5  # created (2), disabled once (record, event), enabled


async def test_a_replace_takes_every_field_from_the_body(webhooks):
    created = await webhooks.create(ACCOUNT, body(name="a", roomId="r1"))
    replaced = await webhooks.replace(ACCOUNT, created.id, body())
    assert (replaced.name, replaced.room_id, replaced.created_at) == (None, None, T0)


async def test_a_delete_announces_a_tombstone(webhooks, store):
    created = await webhooks.create(ACCOUNT, body())
    deleted = await webhooks.delete(ACCOUNT, created.id)
    assert deleted.id == created.id and store.rows == {}
    assert store.outbox[-1] == (TOPICS.registry, f"webhook:{created.id}".encode(), None)


async def test_republishing_announces_every_accounts_webhooks(webhooks, store):
    await webhooks.create(ACCOUNT, body())
    await webhooks.create(OTHER_ACCOUNT, body())
    store.outbox.clear()
    assert await webhooks.republish_all() == 2
    assert {topic for topic, _, _ in store.outbox} == {TOPICS.registry}
