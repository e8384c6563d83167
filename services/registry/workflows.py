"""Workflow use cases: CRUD with code checked on save, versions, and the execution log.

Every change and the outbox row announcing it (`workflow:<id>` on the registry topic, no
code) share one transaction, as for webhooks.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

import asyncpg
import structlog

from services.registry import repository, workflow_store
from services.registry.models import Execution, Workflow, WorkflowInput, WorkflowPatch
from services.registry.policy import check_room_scope
from services.registry.service import InvalidChange, NotFound, check_quota, parse_id
from services.registry.workflow_store import WorkflowRow
from shared.kafka import Topics, dumps
from shared.messages import WorkflowRecord, registry_key
from shared.pagination import after_cursor, cut_page

log = structlog.get_logger(__name__)

EXECUTION_STATUSES = ("running", "success", "error", "timeout")
# A patch whose code changed under it is checked again, this many times at most.
PATCH_ATTEMPTS = 3


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


@dataclass(frozen=True)
class WorkflowPage:
    workflows: list[Workflow]
    next_cursor: str | None


@dataclass(frozen=True)
class ExecutionPage:
    executions: list[Execution]
    next_cursor: str | None


def public_workflow(row: WorkflowRow) -> Workflow:
    return Workflow(
        id=str(row.id),
        organization_id=str(row.organization_id),
        name=row.name,
        events=list(row.events),
        room_id=row.room_id,
        enabled=row.enabled,
        language=row.language,
        version=row.version,
        code=row.code,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def registry_entry(topics: Topics, row: WorkflowRow) -> tuple[str, bytes, bytes | None]:
    record = WorkflowRecord(
        id=str(row.id),
        organization_id=str(row.organization_id),
        name=row.name,
        events=list(row.events),
        room_id=row.room_id,
        enabled=row.enabled,
        language=row.language,
        version=row.version,
        revision=row.revision,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
    key = registry_key("workflow", str(row.id)).encode()
    return topics.registry, key, dumps(record.model_dump(mode="json"))


def _execution(record: asyncpg.Record) -> Execution:
    return Execution(
        **{**dict(record), "id": str(record["id"]), "workflow_id": str(record["workflow_id"])}
    )


class WorkflowService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        topics: Topics,
        clock: Callable[[], datetime],
        check_code: CodeChecker,
        *,
        quota: int = 100,
    ) -> None:
        self._pool = pool
        self._topics = topics
        self._clock = clock
        self._check_code = check_code
        self._quota = quota

    async def _checked(self, code: str, language: str) -> None:
        try:
            await self._check_code(code, language)
        except CodeRejected as exc:
            raise InvalidChange("code", str(exc)) from exc

    async def create(self, account_id: str, body: WorkflowInput) -> Workflow:
        # Checked before the transaction: a Deno parse holds no connection or lock.
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
        async with self._pool.acquire() as conn, conn.transaction():
            await check_quota(conn, "workflows", row.organization_id, self._quota)
            await workflow_store.insert(conn, row)
            await repository.enqueue(conn, [registry_entry(self._topics, row)])
        log.info("workflow.created", account_id=account_id, workflow_id=str(row.id))
        return public_workflow(row)

    async def get(self, account_id: str, workflow_id: str) -> Workflow:
        async with self._pool.acquire() as conn:
            row = await workflow_store.get(
                conn, organization_id=parse_id(account_id), workflow_id=parse_id(workflow_id)
            )
        if row is None:
            raise NotFound(workflow_id)
        return public_workflow(row)

    async def list(self, account_id: str, *, limit: int, cursor: str | None) -> WorkflowPage:
        async with self._pool.acquire() as conn:
            rows = await workflow_store.page(
                conn,
                organization_id=parse_id(account_id),
                limit=limit + 1,
                after=after_cursor(cursor),
            )
        rows, next_cursor = cut_page(rows, limit, lambda r: (r.created_at, r.id))
        return WorkflowPage([public_workflow(r) for r in rows], next_cursor)

    async def patch(self, account_id: str, workflow_id: str, body: WorkflowPatch) -> Workflow:
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
            updated = await self._apply_patch(account_id, workflow_id, body, checked)
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
    ) -> WorkflowRow | None:
        """The patched row, stored; None when it needs a code check it has not had (it changed
        since it was read)."""
        fields = body.model_fields_set
        async with self._pool.acquire() as conn, conn.transaction():
            row = await workflow_store.get(
                conn,
                organization_id=parse_id(account_id),
                workflow_id=parse_id(workflow_id),
                for_update=True,
            )
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
                await workflow_store.insert_version(conn, updated)
            await workflow_store.update(conn, updated)
            await repository.enqueue(conn, [registry_entry(self._topics, updated)])
        return updated

    async def delete(self, account_id: str, workflow_id: str) -> Workflow:
        async with self._pool.acquire() as conn, conn.transaction():
            row = await workflow_store.get(
                conn, organization_id=parse_id(account_id), workflow_id=parse_id(workflow_id)
            )
            if row is None:
                raise NotFound(workflow_id)
            await workflow_store.delete(
                conn, organization_id=row.organization_id, workflow_id=row.id
            )
            key = registry_key("workflow", str(row.id)).encode()
            await repository.enqueue(conn, [(self._topics.registry, key, None)])
        log.info("workflow.deleted", account_id=account_id, workflow_id=workflow_id)
        return public_workflow(row)

    async def republish_all(self) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await workflow_store.all_workflows(conn)
            if rows:
                await repository.enqueue(conn, [registry_entry(self._topics, r) for r in rows])
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
        async with self._pool.acquire() as conn:
            await self._require(conn, account_id, workflow_id)
            records = await workflow_store.executions(
                conn,
                organization_id=parse_id(account_id),
                workflow_id=parse_id(workflow_id),
                status=status,
                limit=limit + 1,
                after=after_cursor(cursor),
            )
        records, next_cursor = cut_page(records, limit, lambda r: (r["created_at"], r["id"]))
        return ExecutionPage([_execution(r) for r in records], next_cursor)

    async def execution(self, account_id: str, workflow_id: str, execution_id: str) -> Execution:
        async with self._pool.acquire() as conn:
            record = await workflow_store.execution(
                conn,
                organization_id=parse_id(account_id),
                workflow_id=parse_id(workflow_id),
                execution_id=parse_id(execution_id),
            )
        if record is None:
            raise NotFound(execution_id)
        return _execution(record)

    async def _require(self, conn: asyncpg.Connection, account_id: str, workflow_id: str) -> None:
        row = await workflow_store.get(
            conn, organization_id=parse_id(account_id), workflow_id=parse_id(workflow_id)
        )
        if row is None:
            raise NotFound(workflow_id)
