"""asyncpg SQL for workflows (registry schema) and reads of their executions (workflow schema)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

_COLUMNS = (
    "w.id, w.organization_id, w.name, w.events, w.room_id, w.enabled, w.language, w.version,"
    " w.revision, w.created_at, w.updated_at, v.code"
)
_FROM = (
    "registry.workflows w JOIN registry.workflow_versions v"
    " ON v.workflow_id = w.id AND v.version = w.version"
)
_EXECUTION_COLUMNS = (
    "id, workflow_id, version, event_id, event, status, started_at, duration_ms, result, error,"
    " logs, created_at"
)


@dataclass(frozen=True)
class WorkflowRow:
    id: UUID
    organization_id: UUID
    name: str
    events: list[str]
    room_id: str | None
    enabled: bool
    language: str
    version: int
    revision: int
    created_at: datetime
    updated_at: datetime
    code: str

    @classmethod
    def from_record(cls, record: asyncpg.Record) -> WorkflowRow:
        return cls(**dict(record))


async def insert(conn: asyncpg.Connection, row: WorkflowRow) -> None:
    await conn.execute(
        "INSERT INTO registry.workflows (id, organization_id, name, events, room_id, enabled,"
        " language, version, revision, created_at, updated_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        row.id,
        row.organization_id,
        row.name,
        row.events,
        row.room_id,
        row.enabled,
        row.language,
        row.version,
        row.revision,
        row.created_at,
        row.updated_at,
    )
    await insert_version(conn, row)


async def insert_version(conn: asyncpg.Connection, row: WorkflowRow) -> None:
    await conn.execute(
        "INSERT INTO registry.workflow_versions (workflow_id, version, language, code,"
        " created_at) VALUES ($1, $2, $3, $4, $5)",
        row.id,
        row.version,
        row.language,
        row.code,
        row.updated_at,
    )


async def get(
    conn: asyncpg.Connection, *, organization_id: UUID, workflow_id: UUID, for_update: bool = False
) -> WorkflowRow | None:
    lock = " FOR UPDATE OF w" if for_update else ""
    record = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM {_FROM} WHERE w.organization_id = $1 AND w.id = $2{lock}",
        organization_id,
        workflow_id,
    )
    return WorkflowRow.from_record(record) if record else None


async def page(
    conn: asyncpg.Connection,
    *,
    organization_id: UUID,
    limit: int,
    after: tuple[datetime, UUID] | None,
) -> list[WorkflowRow]:
    records = await conn.fetch(
        f"SELECT {_COLUMNS} FROM {_FROM} WHERE w.organization_id = $1"
        " AND ($2::timestamptz IS NULL OR (w.created_at, w.id) < ($2, $3::uuid))"
        " ORDER BY w.created_at DESC, w.id DESC LIMIT $4",
        organization_id,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return [WorkflowRow.from_record(r) for r in records]


async def update(conn: asyncpg.Connection, row: WorkflowRow) -> None:
    """Write the changeable fields and bump the revision (the version is the caller's)."""
    await conn.execute(
        "UPDATE registry.workflows SET name = $3, events = $4, room_id = $5, enabled = $6,"
        " language = $7, version = $8, updated_at = $9, revision = revision + 1"
        " WHERE organization_id = $1 AND id = $2",
        row.organization_id,
        row.id,
        row.name,
        row.events,
        row.room_id,
        row.enabled,
        row.language,
        row.version,
        row.updated_at,
    )


async def delete(conn: asyncpg.Connection, *, organization_id: UUID, workflow_id: UUID) -> bool:
    result = await conn.execute(
        "DELETE FROM registry.workflows WHERE organization_id = $1 AND id = $2",
        organization_id,
        workflow_id,
    )
    return result.endswith(" 1")


async def all_workflows(conn: asyncpg.Connection) -> list[WorkflowRow]:
    """Every account's workflows: only for re-announcing them all to the registry topic."""
    records = await conn.fetch(f"SELECT {_COLUMNS} FROM {_FROM} ORDER BY w.id")
    return [WorkflowRow.from_record(r) for r in records]


async def executions(
    conn: asyncpg.Connection,
    *,
    organization_id: UUID,
    workflow_id: UUID,
    status: str | None,
    limit: int,
    after: tuple[datetime, UUID] | None,
) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {_EXECUTION_COLUMNS} FROM workflow.executions"
        " WHERE workflow_id = $1 AND organization_id = $2"
        " AND ($3::text IS NULL OR status = $3)"
        " AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5::uuid))"
        " ORDER BY created_at DESC, id DESC LIMIT $6",
        workflow_id,
        organization_id,
        status,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )


async def execution(
    conn: asyncpg.Connection, *, organization_id: UUID, workflow_id: UUID, execution_id: UUID
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_EXECUTION_COLUMNS} FROM workflow.executions"
        " WHERE id = $1 AND workflow_id = $2 AND organization_id = $3",
        execution_id,
        workflow_id,
        organization_id,
    )
