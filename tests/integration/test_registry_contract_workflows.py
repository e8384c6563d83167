"""WorkflowRepository's contract, on the fake and on Postgres alike."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta

import pytest

from services.registry.audit.models import Actor, AuditEntry
from services.registry.errors import QuotaExceeded
from services.registry.workflows.models import SavedByRow
from services.registry.workflows.stats import ExecutionCounts
from tests.support.registry_contracts import T0, execution_row, subject_fixture, workflow_row

pytestmark = pytest.mark.integration

subject = subject_fixture("workflows")
ENTRY = ("roomhooks.registry", b"workflow:1", b"{}")


async def stored(subject, *rows):
    async with subject.repo.transaction() as tx:
        for row in rows:
            await tx.insert(row)


async def test_a_workflow_is_found_with_its_code_in_its_own_account_only(subject):
    mine, theirs = await subject.account(), await subject.account()
    row = workflow_row(mine)
    await stored(subject, row)
    assert await subject.repo.get(mine, row.id) == row
    assert await subject.repo.get(theirs, row.id) is None
    assert await subject.repo.get(mine, uuid.uuid4()) is None


async def test_pages_are_newest_first_and_go_on_after_the_cursor(subject):
    mine, theirs = await subject.account(), await subject.account()
    rows = [workflow_row(mine, minute=m) for m in range(4)]
    await stored(subject, *rows, workflow_row(theirs, minute=9))
    first = await subject.repo.page(mine, limit=3, after=None)
    assert first == [rows[3], rows[2], rows[1]]
    assert await subject.repo.page(mine, limit=3, after=(first[-1].created_at, first[-1].id)) == [
        rows[0]
    ]


async def test_a_new_version_brings_its_code_and_the_revision_goes_up(subject):
    mine = await subject.account()
    row = workflow_row(mine)
    await stored(subject, row)
    later = T0.replace(hour=13)
    new = replace(row, version=2, code="export default async () => 2", language="ts")
    new = replace(new, name="renamed", enabled=False, room_id="r", updated_at=later)
    async with subject.repo.transaction() as tx:
        assert await tx.get_for_update(mine, row.id) == row
        await tx.insert_version(new, kept=100)
        await tx.update(replace(new, created_at=later))
    assert await subject.repo.get(mine, row.id) == replace(new, revision=2)


async def test_an_update_without_a_new_version_keeps_the_code(subject):
    mine = await subject.account()
    row = workflow_row(mine)
    await stored(subject, row)
    async with subject.repo.transaction() as tx:
        await tx.update(replace(row, code="ignored", events=["participant.left"]))
    expected = replace(row, events=["participant.left"], revision=2)
    assert await subject.repo.get(mine, row.id) == expected


async def test_a_delete_is_true_once_and_only_in_the_account(subject):
    mine, theirs = await subject.account(), await subject.account()
    row = workflow_row(mine)
    await stored(subject, row)
    async with subject.repo.transaction() as tx:
        assert await tx.delete(theirs, row.id) is False
        assert await tx.delete(mine, row.id) is True
        assert await tx.delete(mine, row.id) is False
    assert await subject.repo.get(mine, row.id) is None


async def test_the_quota_counts_the_accounts_own_workflows(subject):
    mine, theirs = await subject.account(), await subject.account()
    await stored(subject, workflow_row(mine))
    async with subject.repo.transaction() as tx:
        await tx.check_quota(theirs, 1)
        with pytest.raises(QuotaExceeded) as refused:
            await tx.check_quota(mine, 1)
    assert (refused.value.what, refused.value.quota) == ("workflows", 1)


async def test_a_transaction_that_raises_keeps_neither_change_nor_entries(subject):
    mine = await subject.account()
    row = workflow_row(mine)
    with pytest.raises(RuntimeError):
        async with subject.repo.transaction() as tx:
            await tx.insert(row)
            await tx.enqueue([ENTRY])
            raise RuntimeError("rolled back")
    assert await subject.repo.get(mine, row.id) is None
    assert await subject.outbox() == []


async def test_entries_and_all_workflows(subject):
    rows = [workflow_row(await subject.account()) for _ in range(2)]
    await stored(subject, *rows)
    async with subject.repo.transaction() as tx:
        assert await tx.all() == sorted(rows, key=lambda r: r.id)
        await tx.enqueue([ENTRY])
    assert await subject.outbox() == [ENTRY]


async def test_runs_are_the_workflows_own_newest_first_by_status(subject):
    mine, theirs = await subject.account(), await subject.account()
    flow, other = workflow_row(mine), workflow_row(mine)
    await stored(subject, flow, other)
    runs = [execution_row(flow.id, minute=m, status=("success", "error")[m % 2]) for m in range(4)]
    for run in runs:
        await subject.record_run(mine, run)
    await subject.record_run(mine, execution_row(other.id, minute=9))
    await subject.record_run(theirs, execution_row(flow.id, minute=8))
    read = subject.repo.executions
    assert await read(mine, flow.id, status=None, limit=10, after=None) == runs[::-1]
    assert await read(mine, flow.id, status="error", limit=10, after=None) == [runs[3], runs[1]]
    after = (runs[2].created_at, runs[2].id)
    assert await read(mine, flow.id, status=None, limit=1, after=after) == [runs[1]]
    assert await subject.repo.execution(mine, flow.id, runs[0].id) == runs[0]
    assert await subject.repo.execution(theirs, flow.id, runs[0].id) is None
    assert await subject.repo.execution(mine, other.id, runs[0].id) is None


def saved(row, version: int, *, minute: int, actor: Actor, action="workflow.updated") -> AuditEntry:
    """The audit entry a save of `version` writes, `minute` minutes after T0."""
    return AuditEntry(
        id=uuid.uuid4(),
        account_id=row.organization_id,
        created_at=T0 + timedelta(minutes=minute, milliseconds=3),
        actor=actor,
        action=action,
        target_id=str(row.id),
        changes=[{"field": "version", "value": version}],
    )


async def test_versions_are_newest_first_without_code_and_name_their_saver(subject):
    mine, theirs = await subject.account(), await subject.account()
    row = workflow_row(mine)
    owner = Actor("key", str(mine), uuid.uuid4(), "deploy bot", "OWNER")
    async with subject.repo.transaction() as tx:
        await tx.insert(row)
        await tx.audit(saved(row, 1, minute=0, actor=owner, action="workflow.created"))
    for n in (2, 3):
        new = replace(row, version=n, code=f"export default async () => {n}", language="ts")
        async with subject.repo.transaction() as tx:
            await tx.insert_version(
                replace(new, updated_at=T0 + timedelta(minutes=10 * n)), kept=100
            )
            await tx.update(new)
            if n == 3:  # version 2's entry has expired
                await tx.audit(saved(row, 3, minute=30, actor=Actor.system(str(mine))))
    page = await subject.repo.versions(mine, row.id, limit=2, before=None)
    assert [(v.version, v.language, v.code) for v in page] == [(3, "ts", None), (2, "ts", None)]
    assert page[0].saved_by == SavedByRow("system", None, None, None)
    assert page[1].saved_by is None
    assert page[0].created_at == T0 + timedelta(minutes=30)
    rest = await subject.repo.versions(mine, row.id, limit=2, before=2)
    assert [v.version for v in rest] == [1]
    assert rest[0].saved_by == SavedByRow("key", owner.key_id, "deploy bot", "OWNER")
    one = await subject.repo.version(mine, row.id, 1)
    assert (one.code, one.saved_by) == (row.code, rest[0].saved_by)
    assert await subject.repo.version(mine, row.id, 4) is None
    assert await subject.repo.version(theirs, row.id, 1) is None
    assert await subject.repo.versions(theirs, row.id, limit=5, before=None) == []


async def test_a_new_version_forgets_those_past_the_newest_kept_of_its_workflow_only(subject):
    mine = await subject.account()
    row, other = workflow_row(mine), workflow_row(mine)
    await stored(subject, row, other)
    for n in (2, 3, 4):
        new = replace(row, version=n, code=f"export default async () => {n}")
        async with subject.repo.transaction() as tx:
            await tx.insert_version(new, kept=2)
            await tx.update(new)
    page = await subject.repo.versions(mine, row.id, limit=10, before=None)
    assert [v.version for v in page] == [4, 3]
    assert await subject.repo.version(mine, row.id, 2) is None
    assert [
        v.version for v in await subject.repo.versions(mine, other.id, limit=10, before=None)
    ] == [1]


async def test_stats_count_each_status_per_bucket_with_the_p95_duration(subject):
    mine, theirs = await subject.account(), await subject.account()
    flow, other = workflow_row(mine), workflow_row(mine)
    await stored(subject, flow, other)
    durations = {0: [10] * 19 + [900], 1: [5, 7]}  # minute -> finished runs' durations
    for minute, found in durations.items():
        for ms in found:
            run = replace(execution_row(flow.id, minute=minute), duration_ms=ms)
            await subject.record_run(mine, run)
    await subject.record_run(mine, replace(execution_row(flow.id, minute=1, status="error")))
    running = replace(execution_row(flow.id, minute=1, status="running"), duration_ms=None)
    await subject.record_run(mine, running)
    await subject.record_run(mine, execution_row(flow.id, minute=-1))  # before the window
    await subject.record_run(mine, execution_row(other.id, minute=0))
    await subject.record_run(theirs, execution_row(flow.id, minute=0))

    found = await subject.repo.stats(mine, flow.id, period_s=60, since=T0)
    by_start = {r.start: r for r in found}
    assert by_start[None] == ExecutionCounts(None, 1, 22, 1, 0, 12)
    assert by_start[T0] == ExecutionCounts(T0, 0, 20, 0, 0, 10)
    minute = T0 + timedelta(minutes=1)
    assert by_start[minute] == ExecutionCounts(minute, 1, 2, 1, 0, 12)
    assert len(found) == 3
    assert await subject.repo.stats(theirs, other.id, period_s=60, since=T0) in (
        [],
        [ExecutionCounts(None, 0, 0, 0, 0, None)],
    )
