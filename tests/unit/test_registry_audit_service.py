"""The rooms' services audit each change they keep, with its actor, in its transaction, and
nothing for a change refused; AuditService pages what was written."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest

from services.registry.accounts.service import AccountService
from services.registry.audit.models import Actor, AuditRecord
from services.registry.audit.recorder import MASK, audit_entry
from services.registry.audit.service import AuditService
from services.registry.deliveries.service import DeliveryLogService
from services.registry.errors import InvalidChange, NotFound, QuotaExceeded
from services.registry.policy import Role
from services.registry.webhooks.models import WebhookInput, WebhookPatch
from services.registry.webhooks.service import WebhookService
from services.registry.workflows.models import WorkflowInput, WorkflowPatch
from services.registry.workflows.service import WorkflowService
from shared.kafka import Topics
from shared.pagination import InvalidCursor
from shared.secrets_box import SecretsBox, generate_key
from tests.support.registry_contracts import T0, delivery_row
from tests.support.registry_fakes import (
    FakeAccounts,
    FakeAuditLog,
    FakeDeliveryLog,
    FakeWebhooks,
    FakeWorkflows,
)

ACCOUNT = str(uuid.uuid4())
ADMIN = Actor("key", ACCOUNT, uuid.uuid4(), "deploy bot", "ADMIN")
TOPICS = Topics()
BOX = SecretsBox([generate_key()])
HEADER_VALUE = "Bearer header-credential-42"
CODE = "export default async function () { return 'first'; }"


def hook(**fields) -> WebhookInput:
    return WebhookInput.model_validate(
        {"url": "https://hooks.example.com/in", "events": ["participant.joined"], **fields}
    )


async def no_check(code: str, language: str) -> None:
    return None


@pytest.fixture
def hooks() -> FakeWebhooks:
    return FakeWebhooks()


@pytest.fixture
def webhooks(hooks) -> WebhookService:
    return WebhookService(hooks, TOPICS, lambda: T0, BOX, quota=1)


def only(entries):
    [entry] = entries
    return AuditRecord.of(entry).model_dump(mode="json")


async def test_a_created_webhook_is_audited_with_its_key_and_no_secret_or_header_value(
    webhooks, hooks
):
    created = await webhooks.create(
        ACCOUNT, hook(name="a", headers={"Authorization": HEADER_VALUE}), actor=ADMIN
    )
    record = only(hooks.audited)
    assert (record["action"], record["target_id"]) == ("webhook.created", created.id)
    assert (record["key_id"], record["key_label"], record["role"]) == (
        str(ADMIN.key_id),
        "deploy bot",
        "ADMIN",
    )
    changes = {c["field"]: c.get("value") for c in record["changes"]}
    assert changes["name"] == "a" and changes["headers"] == {"Authorization": MASK}
    stored = json.dumps(record)
    assert created.secret not in stored and HEADER_VALUE not in stored


async def test_a_patch_records_only_what_it_changed(webhooks, hooks):
    created = await webhooks.create(ACCOUNT, hook(name="a"), actor=ADMIN)
    patch = WebhookPatch.model_validate({"name": "b", "headers": {"X-Key": HEADER_VALUE}})
    await webhooks.patch(ACCOUNT, created.id, patch, actor=ADMIN)
    record = AuditRecord.of(hooks.audited[-1]).model_dump(mode="json")
    assert record["action"] == "webhook.updated"
    assert record["changes"] == [
        {"field": "name", "value": "b", "hidden": False},
        {"field": "headers", "value": {"X-Key": MASK}, "hidden": False},
    ]


async def test_a_rotation_says_the_secret_changed_and_never_what_it_is(webhooks, hooks):
    created = await webhooks.create(ACCOUNT, hook(), actor=ADMIN)
    rotated = await webhooks.rotate_secret(ACCOUNT, created.id, overlap_s=60, actor=ADMIN)
    record = AuditRecord.of(hooks.audited[-1]).model_dump(mode="json")
    assert record["action"] == "webhook.secret_rotated"
    assert [c["field"] for c in record["changes"]] == ["secret", "previous_secret_expires_at"]
    assert record["changes"][0] == {"field": "secret", "value": None, "hidden": True}
    assert rotated.secret not in json.dumps(record) and created.secret not in json.dumps(record)


async def test_a_disable_ordered_by_another_service_is_the_platforms(webhooks, hooks):
    created = await webhooks.create(ACCOUNT, hook(), actor=ADMIN)
    assert await webhooks.disable(ACCOUNT, created.id, reason="410 Gone") is True
    assert await webhooks.disable(ACCOUNT, created.id, reason="410 Gone") is False
    record = AuditRecord.of(hooks.audited[-1]).model_dump(mode="json")
    assert (record["actor"], record["key_id"], record["action"]) == (
        "system",
        None,
        "webhook.disabled",
    )
    assert {c["field"]: c["value"] for c in record["changes"]} == {
        "enabled": False,
        "disabled_reason": "410 Gone",
    }
    assert len(hooks.audited) == 2  # the second order changed nothing, audited nothing


async def test_a_refused_write_audits_nothing(webhooks, hooks):
    created = await webhooks.create(ACCOUNT, hook(events=["webhook.created"]), actor=ADMIN)
    with pytest.raises(QuotaExceeded):
        await webhooks.create(ACCOUNT, hook(), actor=ADMIN)
    with pytest.raises(NotFound):
        await webhooks.delete(ACCOUNT, str(uuid.uuid4()), actor=ADMIN)
    scoped = WebhookPatch.model_validate({"roomId": "r1"})  # organization events in a room
    with pytest.raises(InvalidChange):
        await webhooks.patch(ACCOUNT, created.id, scoped, actor=ADMIN)
    assert [e.action for e in hooks.audited] == ["webhook.created"]
    await webhooks.delete(ACCOUNT, created.id, actor=ADMIN)
    assert [e.action for e in hooks.audited] == ["webhook.created", "webhook.deleted"]


async def test_a_workflows_code_is_never_copied_its_new_version_is():
    store = FakeWorkflows()
    workflows = WorkflowService(store, TOPICS, lambda: T0, no_check)
    body = WorkflowInput.model_validate(
        {"name": "w", "events": ["participant.joined"], "code": CODE}
    )
    created = await workflows.create(ACCOUNT, body, actor=ADMIN)
    new_code = CODE.replace("first", "second")
    await workflows.patch(
        ACCOUNT, created.id, WorkflowPatch.model_validate({"code": new_code}), actor=ADMIN
    )
    await workflows.delete(ACCOUNT, created.id, actor=ADMIN)
    made, patched, deleted = (AuditRecord.of(e).model_dump(mode="json") for e in store.audited)
    assert (made["action"], patched["action"], deleted["action"]) == (
        "workflow.created",
        "workflow.updated",
        "workflow.deleted",
    )
    assert {"field": "code", "value": None, "hidden": True} in made["changes"]
    assert patched["changes"] == [
        {"field": "version", "value": 2, "hidden": False},
        {"field": "code", "value": None, "hidden": True},
    ]
    assert "first" not in json.dumps(made) and "second" not in json.dumps(patched)


async def test_keys_minted_and_revoked_are_audited_without_the_key():
    store = FakeAccounts()
    accounts = AccountService(store, clock=lambda: T0)
    account_id = await accounts.create_account("acme")
    owner = Actor("key", str(account_id), uuid.uuid4(), None, "OWNER")
    await accounts.mint_key(account_id, Role.OWNER)
    minted = await accounts.mint_key(account_id, Role.MEMBER, label="ci", actor=owner)
    await accounts.revoke_key(account_id, minted.key.id, actor=owner)
    await accounts.revoke_key(account_id, minted.key.id, actor=owner)  # no change: no entry
    first, created, revoked = (AuditRecord.of(e).model_dump(mode="json") for e in store.audited)
    assert first["actor"] == "system"  # minted by the admin CLI
    assert (created["action"], created["target_id"]) == ("api_key.created", str(minted.key.id))
    assert {c["field"] for c in created["changes"]} >= {"role", "label", "prefix"}
    assert minted.token not in json.dumps(created)
    assert revoked["action"] == "api_key.revoked"
    assert [c["field"] for c in revoked["changes"]] == ["revoked_at"]


async def test_a_redelivery_and_a_test_ping_are_audited_with_their_key():
    log = FakeDeliveryLog()
    row = FakeWebhooks()
    service = WebhookService(row, TOPICS, lambda: T0, BOX)
    created = await service.create(ACCOUNT, hook())
    log.webhooks = dict(row.rows)
    delivery = delivery_row(uuid.UUID(created.id))
    log.record(uuid.UUID(ACCOUNT), delivery)
    deliveries = DeliveryLogService(log, TOPICS, lambda: T0)
    await deliveries.redeliver(ACCOUNT, created.id, str(delivery.id), actor=ADMIN)
    delivery_id, _ = await deliveries.send_test(ACCOUNT, created.id, actor=ADMIN)
    with pytest.raises(NotFound):
        await deliveries.redeliver(ACCOUNT, created.id, str(uuid.uuid4()), actor=ADMIN)
    redelivered, pinged = (AuditRecord.of(e).model_dump(mode="json") for e in log.audited)
    assert (redelivered["action"], redelivered["target_id"]) == (
        "delivery.redelivered",
        str(delivery.id),
    )
    assert (pinged["action"], pinged["target_id"]) == ("webhook.test_sent", created.id)
    assert pinged["changes"][0]["value"] == delivery_id
    assert {redelivered["key_id"], pinged["key_id"]} == {str(ADMIN.key_id)}


async def test_the_log_pages_newest_first_from_since_inside_the_account():
    other = str(uuid.uuid4())
    entries = [
        audit_entry(ADMIN, ACCOUNT, "webhook.updated", n, [], now=T0 + timedelta(minutes=n))
        for n in range(5)
    ]
    entries.append(audit_entry(None, other, "webhook.disabled", "x", [], now=T0))
    audit = AuditService(FakeAuditLog(entries))
    first = await audit.list(ACCOUNT, since=None, limit=2, cursor=None)
    assert [e.target_id for e in first.entries] == ["4", "3"]
    rest = await audit.list(ACCOUNT, since=None, limit=10, cursor=first.next_cursor)
    assert [e.target_id for e in rest.entries] == ["2", "1", "0"] and rest.next_cursor is None
    since = await audit.list(ACCOUNT, since=T0 + timedelta(minutes=3), limit=10, cursor=None)
    assert [e.target_id for e in since.entries] == ["4", "3"]
    with pytest.raises(InvalidCursor):
        await audit.list(ACCOUNT, since=None, limit=2, cursor="nonsense")
