"""asyncpg SQL of the execution log: one row per run, idempotent on the run id."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from shared.messages import WorkflowRunRequested


async def begin(conn: asyncpg.Connection, run: WorkflowRunRequested, *, now: datetime) -> bool:
    """Record the run as `running`; False when it already ran (a re-read request).

    A run left `running` by a process that died is taken again: at-least-once.
    """
    inserted = await conn.fetchval(
        "INSERT INTO workflow.executions (id, workflow_id, organization_id, version, event_id,"
        " event, status, started_at, created_at, updated_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, 'running', $7, $8, $7)"
        " ON CONFLICT (id) DO UPDATE SET started_at = EXCLUDED.started_at,"
        " updated_at = EXCLUDED.updated_at"
        " WHERE workflow.executions.status = 'running'"
        " RETURNING 1",
        UUID(run.run_id),
        UUID(run.workflow_id),
        UUID(run.organization_id),
        run.version,
        run.event_id,
        str(run.event.get("event", "")),
        now,
        run.created_at,
    )
    return bool(inserted)


async def finish(
    conn: asyncpg.Connection,
    run_id: str,
    *,
    status: str,
    started_at: datetime,
    duration_ms: int,
    result: Any,
    error: dict[str, Any] | None,
    logs: list[dict[str, Any]],
    now: datetime,
) -> None:
    await conn.execute(
        "UPDATE workflow.executions SET status = $2, started_at = $3, duration_ms = $4,"
        " result = $5::text::jsonb, error = $6, logs = $7, updated_at = $8 WHERE id = $1",
        UUID(run_id),
        status,
        started_at,
        duration_ms,
        None if result is None else json.dumps(result),
        error,
        logs,
        now,
    )


async def code_of(
    conn: asyncpg.Connection, workflow_id: str, version: int
) -> tuple[str, str] | None:
    """(code, language) of one version, from the registry, which owns it."""
    row = await conn.fetchrow(
        "SELECT code, language FROM registry.workflow_versions"
        " WHERE workflow_id = $1 AND version = $2",
        UUID(workflow_id),
        version,
    )
    return (row["code"], row["language"]) if row else None
