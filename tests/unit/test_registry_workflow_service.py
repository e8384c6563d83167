"""WorkflowService's use cases against the in-memory repository: code checked on save,
versions, announcements, and the execution log."""

from __future__ import annotations

import json
import uuid

import pytest

from services.registry.errors import InvalidChange, NotFound, QuotaExceeded
from services.registry.workflows.models import WorkflowInput, WorkflowPatch
from services.registry.workflows.service import CodeRejected, WorkflowService
from shared.kafka import Topics
from tests.support.registry_contracts import T0, execution_row
from tests.support.registry_fakes import FakeWorkflows

ACCOUNT = str(uuid.uuid4())
TOPICS = Topics()
CODE = "export default async function () {}"


class Checker:
    """Rejects code containing `syntax error`; remembers what it checked."""

    def __init__(self) -> None:
        self.checked: list[tuple[str, str]] = []

    async def __call__(self, code: str, language: str) -> None:
        self.checked.append((code, language))
        if "syntax error" in code:
            raise CodeRejected("unexpected token", 1, 5)


def body(**fields) -> WorkflowInput:
    return WorkflowInput.model_validate(
        {"name": "w", "events": ["participant.joined"], "code": CODE, **fields}
    )


@pytest.fixture
def store() -> FakeWorkflows:
    return FakeWorkflows()


@pytest.fixture
def checker() -> Checker:
    return Checker()


@pytest.fixture
def workflows(store, checker) -> WorkflowService:
    return WorkflowService(store, TOPICS, lambda: T0, checker, quota=2)


async def test_create_checks_the_code_and_announces_the_record_without_it(workflows, store):
    created = await workflows.create(ACCOUNT, body())
    assert (created.version, created.code) == (1, CODE)
    [(topic, key, value)] = store.outbox
    assert (topic, key) == (TOPICS.registry, f"workflow:{created.id}".encode())
    assert "code" not in json.loads(value)


async def test_rejected_code_is_an_invalid_change_and_stores_nothing(workflows, store):
    with pytest.raises(InvalidChange) as refused:
        await workflows.create(ACCOUNT, body(code="syntax error"))
    assert refused.value.field == "code"
    assert "line 1, column 5" in refused.value.message
    assert store.rows == {} and store.outbox == []


async def test_a_create_over_the_quota_is_refused(workflows):
    for _ in range(2):
        await workflows.create(ACCOUNT, body())
    with pytest.raises(QuotaExceeded):
        await workflows.create(ACCOUNT, body())


async def test_new_code_is_checked_and_makes_a_new_version(workflows, checker):
    created = await workflows.create(ACCOUNT, body())
    patched = await workflows.patch(ACCOUNT, created.id, WorkflowPatch(code="export default 2"))
    assert (patched.version, patched.code) == (2, "export default 2")
    assert checker.checked[-1] == ("export default 2", "js")
    assert (await workflows.get(ACCOUNT, created.id)).code == "export default 2"


async def test_a_save_keeps_the_newest_versions_it_is_told_to_and_forgets_older_ones(
    store, checker
):
    workflows = WorkflowService(store, TOPICS, lambda: T0, checker, versions_kept=2)
    created = await workflows.create(ACCOUNT, body())
    for n in (2, 3):
        await workflows.patch(ACCOUNT, created.id, WorkflowPatch(code=f"export default {n}"))
    page = await workflows.versions(ACCOUNT, created.id, limit=10, cursor=None)
    assert [v.version for v in page.versions] == [3, 2]
    with pytest.raises(NotFound):
        await workflows.version(ACCOUNT, created.id, 1)


async def test_a_patch_that_leaves_the_code_is_not_checked_and_keeps_the_version(
    workflows, checker
):
    created = await workflows.create(ACCOUNT, body())
    renamed = await workflows.patch(ACCOUNT, created.id, WorkflowPatch(name="x", code=CODE))
    assert (renamed.name, renamed.version) == ("x", 1)
    assert len(checker.checked) == 1


async def test_a_patch_with_rejected_code_changes_nothing(workflows, store):
    created = await workflows.create(ACCOUNT, body())
    with pytest.raises(InvalidChange):
        await workflows.patch(ACCOUNT, created.id, WorkflowPatch(code="syntax error"))
    assert (await workflows.get(ACCOUNT, created.id)).version == 1 and len(store.outbox) == 1


async def test_a_delete_announces_a_tombstone_and_then_the_workflow_is_gone(workflows, store):
    created = await workflows.create(ACCOUNT, body())
    await workflows.delete(ACCOUNT, created.id)
    assert store.outbox[-1] == (TOPICS.registry, f"workflow:{created.id}".encode(), None)
    with pytest.raises(NotFound):
        await workflows.delete(ACCOUNT, created.id)


async def test_executions_are_paged_newest_first_and_need_the_workflow(workflows, store):
    created = await workflows.create(ACCOUNT, body())
    flow_id = uuid.UUID(created.id)
    runs = [execution_row(flow_id, minute=m) for m in range(3)]
    for run in runs:
        store.record_run(uuid.UUID(ACCOUNT), run)
    first = await workflows.executions(ACCOUNT, created.id, limit=2, status=None, cursor=None)
    assert [e.id for e in first.executions] == [str(runs[2].id), str(runs[1].id)]
    rest = await workflows.executions(
        ACCOUNT, created.id, limit=2, status=None, cursor=first.next_cursor
    )
    assert [e.id for e in rest.executions] == [str(runs[0].id)] and rest.next_cursor is None
    one = await workflows.execution(ACCOUNT, created.id, str(runs[0].id))
    assert one.logs == runs[0].logs
    with pytest.raises(NotFound):
        await workflows.executions(ACCOUNT, str(uuid.uuid4()), limit=2, status=None, cursor=None)
    with pytest.raises(NotFound):
        await workflows.execution(ACCOUNT, created.id, str(uuid.uuid4()))
