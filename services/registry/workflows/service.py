"""Workflow use cases: CRUD with code checked on save, versions, and the execution log.

Every change and the outbox entry announcing it share one transaction, as for webhooks.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import structlog

from services.registry.audit.models import Actor, AuditEntry
from services.registry.audit.recorder import audit_entry, changed_fields
from services.registry.deliveries.stats import window_start
from services.registry.errors import InvalidChange, NotFound, parse_id
from services.registry.outbox import OutboxEntry
from services.registry.policy import check_room_scope
from services.registry.workflows.models import (
    Execution,
    ExecutionRow,
    VersionRow,
    Workflow,
    WorkflowInput,
    WorkflowPatch,
    WorkflowRow,
    WorkflowVersion,
    WorkflowVersionSummary,
)
from services.registry.workflows.records import (
    public_execution,
    public_version,
    public_version_summary,
    public_workflow,
    registry_entry,
    tombstone_entry,
)
from services.registry.workflows.stats import ExecutionCounts, WorkflowStats, summarise
from shared.kafka import Topics
from shared.pagination import InvalidCursor, after_cursor, cut_page, decode_cursor

log = structlog.get_logger(__name__)

# A patch whose code changed under it is checked again, this many times at most.
PATCH_ATTEMPTS = 3

After = tuple[datetime, UUID] | None


class CodeRejected(ValueError):
    """The code cannot run: a syntax error (with its 1-based line and column) or no default
    exported function."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None):
        where = f"line {line}, column {column}: " if line is not None else ""
        super().__init__(where + message)
        self.line = line
        self.column = column


class CodeChecker(Protocol):
    def __call__(self, code: str, language: str) -> Awaitable[None]:
        """Raise CodeRejected when `code` is not a module with a default-exported function."""


class WorkflowWrites(Protocol):
    """One transaction over workflows, their versions and the outbox: everything written in
    it is kept when the `async with` ends, and nothing when it raises. A workflow is only
    ever reached through its account (`organization_id`)."""

    async def check_quota(self, organization_id: UUID, quota: int) -> None:
        """Raise QuotaExceeded when the account already holds `quota` workflows; creates in
        one account near its quota take turns, so they cannot pass it together."""

    async def insert(self, row: WorkflowRow) -> None:
        """Store a new workflow and its first version (`row.version`, `row.code`)."""

    async def get_for_update(self, organization_id: UUID, workflow_id: UUID) -> WorkflowRow | None:
        """The workflow, which no other transaction changes until this one ends."""

    async def insert_version(self, row: WorkflowRow, *, kept: int) -> None:
        """Store `row.code` as version `row.version` of the workflow (once per version), and
        forget its versions older than the newest `kept`."""

    async def update(self, row: WorkflowRow) -> None:
        """Store the changeable fields (name, events, room, enabled, language, current
        version, updated_at) of an existing workflow; its revision + 1."""

    async def delete(self, organization_id: UUID, workflow_id: UUID) -> bool:
        """Delete it and its versions; False when there was none."""

    async def all(self) -> list[WorkflowRow]:
        """Every account's workflows, by id: only for announcing them all again."""

    async def enqueue(self, entries: Sequence[OutboxEntry]) -> None:
        """Add to the outbox, published in this order once the transaction is kept."""

    async def audit(self, entry: AuditEntry) -> None:
        """Add to the audit log, kept with this transaction."""


class WorkflowRepository(Protocol):
    """Workflows, each inside its account, with the code of their current version; and the
    runs the workflow runner records (read only)."""

    def transaction(self) -> AbstractAsyncContextManager[WorkflowWrites]: ...

    async def get(self, organization_id: UUID, workflow_id: UUID) -> WorkflowRow | None: ...

    async def page(self, organization_id: UUID, *, limit: int, after: After) -> list[WorkflowRow]:
        """At most `limit`, newest first by (created_at, id), those before `after`."""

    async def executions(
        self,
        organization_id: UUID,
        workflow_id: UUID,
        *,
        status: str | None,
        limit: int,
        after: After,
    ) -> list[ExecutionRow]:
        """At most `limit` of the workflow's runs with this status (None: any), newest first
        by (created_at, id), those before `after`."""

    async def execution(
        self, organization_id: UUID, workflow_id: UUID, execution_id: UUID
    ) -> ExecutionRow | None: ...

    async def versions(
        self, organization_id: UUID, workflow_id: UUID, *, limit: int, before: int | None
    ) -> list[VersionRow]:
        """At most `limit` of the workflow's versions below `before` (None: all), newest
        first, without their code; each with who saved it where the audit log still says."""

    async def version(
        self, organization_id: UUID, workflow_id: UUID, version: int
    ) -> VersionRow | None:
        """One version with its code; None when the workflow (in this account) has none."""

    async def stats(
        self, organization_id: UUID, workflow_id: UUID, *, period_s: int, since: datetime
    ) -> list[ExecutionCounts]:
        """The workflow's executions from `since`, counted per bucket of `period_s` seconds
        (only buckets that have some) and in total (`start` None)."""


@dataclass(frozen=True)
class WorkflowPage:
    workflows: list[Workflow]
    next_cursor: str | None


@dataclass(frozen=True)
class ExecutionPage:
    executions: list[Execution]
    next_cursor: str | None


@dataclass(frozen=True)
class VersionPage:
    versions: list[WorkflowVersionSummary]
    next_cursor: str | None


class WorkflowService:
    """Workflow CRUD for one account at a time. Code is checked before it is stored (never
    inside a transaction: a check holds no connection or lock); a new code or language is a
    new version."""

    def __init__(
        self,
        workflows: WorkflowRepository,
        topics: Topics,
        clock: Callable[[], datetime],
        check_code: CodeChecker,
        *,
        quota: int = 100,
        versions_kept: int = 100,
    ) -> None:
        self._workflows = workflows
        self._topics = topics
        self._clock = clock
        self._check_code = check_code
        self._quota = quota
        self._versions_kept = versions_kept

    async def _checked(self, code: str, language: str) -> None:
        try:
            await self._check_code(code, language)
        except CodeRejected as exc:
            raise InvalidChange("code", str(exc)) from exc

    async def create(
        self, account_id: str, body: WorkflowInput, *, actor: Actor | None = None
    ) -> Workflow:
        """A new workflow, its code checked first; `actor` (None: the platform) is audited."""
        await self._checked(body.code, body.language)
        now = self._clock()
        row = WorkflowRow(
            id=uuid.uuid4(),
            organization_id=parse_id(account_id),
            name=body.name,
            events=list(body.events),
            room_id=body.room_id,
            enabled=body.enabled,
            language=body.language,
            version=1,
            revision=1,
            created_at=now,
            updated_at=now,
            code=body.code,
        )
        async with self._workflows.transaction() as tx:
            await tx.check_quota(row.organization_id, self._quota)
            await tx.insert(row)
            await tx.enqueue([registry_entry(self._topics, row)])
            changes = changed_fields(None, _fields(row))
            await tx.audit(
                audit_entry(
                    actor, account_id, "workflow.created", row.id, changes, now=self._clock()
                )
            )
        log.info("workflow.created", account_id=account_id, workflow_id=str(row.id))
        return public_workflow(row)

    async def get(self, account_id: str, workflow_id: str) -> Workflow:
        return public_workflow(await self._require(account_id, workflow_id))

    async def list(self, account_id: str, *, limit: int, cursor: str | None) -> WorkflowPage:
        rows = await self._workflows.page(
            parse_id(account_id), limit=limit + 1, after=after_cursor(cursor)
        )
        rows, next_cursor = cut_page(rows, limit, lambda r: (r.created_at, r.id))
        return WorkflowPage([public_workflow(r) for r in rows], next_cursor)

    async def patch(
        self, account_id: str, workflow_id: str, body: WorkflowPatch, *, actor: Actor | None = None
    ) -> Workflow:
        fields = body.model_fields_set
        checked: tuple[str, str] | None = None
        for _ in range(PATCH_ATTEMPTS):
            if "code" in fields or "language" in fields:
                # The new version is checked outside the transaction (a Deno parse holds no
                # lock); the locked row must still be the one it was checked against.
                current = await self.get(account_id, workflow_id)
                wanted = (
                    body.code if "code" in fields else current.code,
                    body.language if "language" in fields else current.language,
                )
                if wanted != (current.code, current.language) and wanted != checked:
                    await self._checked(*wanted)
                    checked = wanted
            updated = await self._apply_patch(account_id, workflow_id, body, checked, actor)
            if updated is not None:
                break
        else:
            raise InvalidChange("code", "the workflow kept changing meanwhile: send it again")
        log.info(
            "workflow.updated",
            account_id=account_id,
            workflow_id=workflow_id,
            version=updated.version,
        )
        return public_workflow(updated)

    async def _apply_patch(
        self,
        account_id: str,
        workflow_id: str,
        body: WorkflowPatch,
        checked: tuple[str, str] | None,
        actor: Actor | None,
    ) -> WorkflowRow | None:
        """The patched row, stored; None when it needs a code check it has not had (it changed
        since it was read)."""
        fields = body.model_fields_set
        async with self._workflows.transaction() as tx:
            row = await tx.get_for_update(parse_id(account_id), parse_id(workflow_id))
            if row is None:
                raise NotFound(workflow_id)
            code = body.code if "code" in fields else row.code
            language = body.language if "language" in fields else row.language
            new_version = code != row.code or language != row.language
            if new_version and (code, language) != checked:
                return None
            updated = replace(
                row,
                name=body.name if "name" in fields else row.name,
                events=list(body.events) if "events" in fields else row.events,
                room_id=body.room_id if "room_id" in fields else row.room_id,
                enabled=body.enabled if "enabled" in fields else row.enabled,
                code=code,
                language=language,
                version=row.version + 1 if new_version else row.version,
                revision=row.revision + 1,
                updated_at=self._clock(),
            )
            try:
                check_room_scope(updated.events, room_id=updated.room_id)
            except ValueError as exc:
                raise InvalidChange("events", str(exc)) from exc
            if new_version:
                await tx.insert_version(updated, kept=self._versions_kept)
            await tx.update(updated)
            await tx.enqueue([registry_entry(self._topics, updated)])
            changes = changed_fields(_fields(row), _fields(updated))
            await tx.audit(
                audit_entry(
                    actor, account_id, "workflow.updated", row.id, changes, now=self._clock()
                )
            )
        return updated

    async def delete(
        self, account_id: str, workflow_id: str, *, actor: Actor | None = None
    ) -> Workflow:
        async with self._workflows.transaction() as tx:
            row = await tx.get_for_update(parse_id(account_id), parse_id(workflow_id))
            if row is None:
                raise NotFound(workflow_id)
            await tx.delete(row.organization_id, row.id)
            await tx.enqueue([tombstone_entry(self._topics, row)])
            await tx.audit(
                audit_entry(actor, account_id, "workflow.deleted", row.id, [], now=self._clock())
            )
        log.info("workflow.deleted", account_id=account_id, workflow_id=workflow_id)
        return public_workflow(row)

    async def republish_all(self) -> int:
        async with self._workflows.transaction() as tx:
            rows = await tx.all()
            if rows:
                await tx.enqueue([registry_entry(self._topics, r) for r in rows])
        return len(rows)

    async def executions(
        self,
        account_id: str,
        workflow_id: str,
        *,
        limit: int,
        status: str | None,
        cursor: str | None,
    ) -> ExecutionPage:
        await self._require(account_id, workflow_id)
        rows = await self._workflows.executions(
            parse_id(account_id),
            parse_id(workflow_id),
            status=status,
            limit=limit + 1,
            after=after_cursor(cursor),
        )
        rows, next_cursor = cut_page(rows, limit, lambda r: (r.created_at, r.id))
        return ExecutionPage([public_execution(r) for r in rows], next_cursor)

    async def execution(self, account_id: str, workflow_id: str, execution_id: str) -> Execution:
        row = await self._workflows.execution(
            parse_id(account_id), parse_id(workflow_id), parse_id(execution_id)
        )
        if row is None:
            raise NotFound(execution_id)
        return public_execution(row)

    async def versions(
        self, account_id: str, workflow_id: str, *, limit: int, cursor: str | None
    ) -> VersionPage:
        workflow = await self._require(account_id, workflow_id)
        rows = await self._workflows.versions(
            workflow.organization_id, workflow.id, limit=limit + 1, before=_version_after(cursor)
        )
        rows, next_cursor = cut_page(rows, limit, lambda r: (r.created_at, r.version))
        return VersionPage(
            [public_version_summary(r, current=workflow.version) for r in rows], next_cursor
        )

    async def version(self, account_id: str, workflow_id: str, version: int) -> WorkflowVersion:
        workflow = await self._require(account_id, workflow_id)
        row = await self._workflows.version(workflow.organization_id, workflow.id, version)
        if row is None:
            raise NotFound(str(version))
        return public_version(row, current=workflow.version)

    async def stats(self, account_id: str, workflow_id: str, window: str) -> WorkflowStats:
        workflow = await self._require(account_id, workflow_id)
        now = self._clock()
        period_s, since = window_start(window, now)
        rows = await self._workflows.stats(
            workflow.organization_id, workflow.id, period_s=period_s, since=since
        )
        return summarise(str(workflow.id), window, rows, now=now)

    async def _require(self, account_id: str, workflow_id: str) -> WorkflowRow:
        row = await self._workflows.get(parse_id(account_id), parse_id(workflow_id))
        if row is None:
            raise NotFound(workflow_id)
        return row


def _version_after(cursor: str | None) -> int | None:
    """The version a page of versions starts below (None: the first page); a versions
    cursor is (created_at, version) of the last one shown."""
    if not cursor:
        return None
    _, version = decode_cursor(cursor)
    if not (version.isascii() and version.isdigit() and len(version) <= 9):
        raise InvalidCursor("is not a cursor this API returned")
    return int(version)


def _fields(row: WorkflowRow) -> dict[str, Any]:
    """The fields as the API shows them (the recorder keeps the code out of the audit log)."""
    return public_workflow(row).model_dump(mode="json")
