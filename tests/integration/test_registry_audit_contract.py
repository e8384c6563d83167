"""The audit log's contracts, on the fakes and on Postgres alike: AuditLog's reads, and the
`audit` every room's transaction offers (kept iff the transaction is)."""

from __future__ import annotations

import uuid
from contextlib import nullcontext
from datetime import timedelta

import pytest

from services.registry.accounts.models import ApiKeyRow
from services.registry.audit import repository as audit_sql
from services.registry.audit.models import Actor
from services.registry.audit.recorder import MASK, audit_entry
from services.registry.audit.repository import PostgresAuditLog
from tests.support.registry_contracts import (
    T0,
    Subject,
    subject_fixture,
    webhook_row,
    workflow_row,
)
from tests.support.registry_fakes import FakeAuditLog

pytestmark = pytest.mark.integration

CHANGES = [
    {"field": "headers", "value": {"Authorization": MASK}},
    {"field": "code", "hidden": True},
    {"field": "events", "value": ["participant.joined"]},
]


@pytest.fixture(params=["fake", "postgres"])
def log(request: pytest.FixtureRequest) -> Subject:
    if request.param == "fake":
        return Subject(FakeAuditLog())
    pool = request.getfixturevalue("pool")
    return Subject(PostgresAuditLog(pool), pool)


async def write(subject: Subject, *entries) -> None:
    """As a room's transaction writes them."""
    if subject.pool is None:
        subject.repo.entries.extend(entries)
        return
    async with subject.pool.acquire() as conn, conn.transaction():
        for entry in entries:
            await audit_sql.insert(conn, entry)


def entry(account_id: uuid.UUID, minute: int, actor: Actor | None = None, **fields):
    values = {"action": "webhook.updated", "target_id": f"t{minute}", "changes": []} | fields
    return audit_entry(
        actor,
        str(account_id),
        values["action"],
        values["target_id"],
        values["changes"],
        now=T0 + timedelta(minutes=minute),
    )


async def test_an_entry_reads_back_as_written(log):
    account_id = uuid.uuid4()
    actor = Actor("key", str(account_id), uuid.uuid4(), "ci", "ADMIN")
    written = entry(account_id, 0, actor, changes=CHANGES)
    await write(log, written, entry(account_id, 1))
    [system, read] = await log.repo.page(account_id, since=None, limit=10, after=None)
    assert read == written
    assert system.actor == Actor.system(str(account_id))


async def test_pages_newest_first_after_a_cursor_from_since_in_one_account(log):
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    await write(log, *(entry(mine, m) for m in range(5)), entry(theirs, 9))
    first = await log.repo.page(mine, since=None, limit=2, after=None)
    assert [e.target_id for e in first] == ["t4", "t3"]
    after = (first[-1].created_at, first[-1].id)
    rest = await log.repo.page(mine, since=None, limit=10, after=after)
    assert [e.target_id for e in rest] == ["t2", "t1", "t0"]
    since = await log.repo.page(mine, since=T0 + timedelta(minutes=3), limit=10, after=None)
    assert [e.target_id for e in since] == ["t4", "t3"]
    assert [e.target_id for e in await log.repo.page(theirs, since=None, limit=9, after=None)] == [
        "t9"
    ]


# --- `audit` in each room's transaction -------------------------------------------------

webhooks = subject_fixture("webhooks")
workflows = subject_fixture("workflows")
accounts = subject_fixture("accounts")
deliveries = subject_fixture("deliveries")


async def audited(subject: Subject, account_id: uuid.UUID) -> list[str]:
    """The actions audited for the account, as committed."""
    if subject.pool is None:
        return [e.action for e in subject.repo.audited if e.account_id == account_id]
    page = await PostgresAuditLog(subject.pool).page(account_id, since=None, limit=99, after=None)
    return [e.action for e in reversed(page)]


async def written(transaction, write, *, kept: bool) -> None:
    """`write` in `transaction`, which then commits (kept) or raises."""
    with pytest.raises(RuntimeError) if not kept else nullcontext():
        async with transaction as tx:
            await write(tx)
            if not kept:
                raise RuntimeError("rolled back")


KEPT = pytest.mark.parametrize("kept", [True, False], ids=["committed", "rolled-back"])


@KEPT
async def test_a_webhooks_audit_entry_is_kept_iff_its_transaction_is(webhooks, kept):
    mine = await webhooks.account()

    async def write(tx) -> None:
        await tx.insert(webhook_row(mine))
        await tx.audit(entry(mine, 0, action="webhook.created"))

    await written(webhooks.repo.transaction(), write, kept=kept)
    assert await audited(webhooks, mine) == (["webhook.created"] if kept else [])


@KEPT
async def test_a_workflows_audit_entry_is_kept_iff_its_transaction_is(workflows, kept):
    mine = await workflows.account()

    async def write(tx) -> None:
        await tx.insert(workflow_row(mine))
        await tx.audit(entry(mine, 0, action="workflow.created"))

    await written(workflows.repo.transaction(), write, kept=kept)
    assert await audited(workflows, mine) == (["workflow.created"] if kept else [])


@KEPT
async def test_a_keys_audit_entry_is_kept_iff_its_transaction_is(accounts, kept):
    account_id = uuid.uuid4()
    await accounts.repo.insert_account(account_id, "acme")
    row = ApiKeyRow(
        id=uuid.uuid4(),
        account_id=account_id,
        role="ADMIN",
        token_sha256=uuid.uuid4().hex * 2,
        token_prefix="rhk_abcd",
        created_at=T0,
    )

    async def write(keys) -> None:
        await keys.insert(row)
        await keys.audit(entry(account_id, 0, action="api_key.created"))

    await written(accounts.repo.keys_of(account_id), write, kept=kept)
    assert await audited(accounts, account_id) == (["api_key.created"] if kept else [])


async def test_an_order_and_its_audit_entry_are_kept_together(deliveries):
    mine = await deliveries.account()
    order = ("roomhooks.deliveries", b"w", b"{}")
    await deliveries.repo.enqueue([order], audit=entry(mine, 0, action="webhook.test_sent"))
    await deliveries.repo.enqueue([order])
    assert await audited(deliveries, mine) == ["webhook.test_sent"]
    assert await deliveries.outbox() == [order, order]
