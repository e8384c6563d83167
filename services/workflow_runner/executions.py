"""asyncpg SQL of the execution log: one row per run, idempotent on the run id."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from shared.failures import storable_text
from shared.messages import WorkflowRunRequested

MAX_EVENT_NAME = 200


async def begin(conn: asyncpg.Connection, run: WorkflowRunRequested, *, now: datetime) -> bool:
    """Record the run as `running`; False when it already ran (a re-read request).

    A run left `running` by a process that died is taken again: at-least-once. The runner
    commits this row without waiting for its flush (service.py): `finish` does not count on it.
    """
    inserted = await conn.fetchval(
        "INSERT INTO workflow.executions (id, workflow_id, organization_id, version, event_id,"
        " event, status, started_at, created_at, updated_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, 'running', $7, $8, $7)"
        " ON CONFLICT (id) DO UPDATE SET started_at = EXCLUDED.started_at,"
        " updated_at = EXCLUDED.updated_at"
        " WHERE workflow.executions.status = 'running'"
        " RETURNING 1",
        *_identity(run),
        now,
        run.created_at,
    )
    return bool(inserted)


def _identity(run: WorkflowRunRequested) -> tuple[Any, ...]:
    """The row's first six columns: id, workflow_id, organization_id, version, event_id, event."""
    return (
        UUID(run.run_id),
        UUID(run.workflow_id),
        UUID(run.organization_id),
        run.version,
        run.event_id,
        # the event's name, as the log shows it: text Postgres takes, bounded (the request is
        # valid whatever the event holds; fanout checked the event itself)
        storable_text(str(run.event.get("event", "")))[:MAX_EVENT_NAME],
    )


async def finish(
    conn: asyncpg.Connection,
    run: WorkflowRunRequested,
    *,
    status: str,
    started_at: datetime,
    duration_ms: int,
    result: Any,
    error: dict[str, Any] | None,
    logs: list[dict[str, Any]],
    now: datetime,
) -> None:
    """Record how the run ended: the whole row, whether or not its `running` row is there (a
    Postgres crash may have lost it, as it was not flushed)."""
    await conn.execute(
        "INSERT INTO workflow.executions (id, workflow_id, organization_id, version, event_id,"
        " event, status, started_at, duration_ms, result, error, logs, created_at, updated_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::text::jsonb, $11, $12, $13, $14)"
        " ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status,"
        " started_at = EXCLUDED.started_at, duration_ms = EXCLUDED.duration_ms,"
        " result = EXCLUDED.result, error = EXCLUDED.error, logs = EXCLUDED.logs,"
        " updated_at = EXCLUDED.updated_at",
        *_identity(run),
        status,
        started_at,
        duration_ms,
        None if result is None else json.dumps(result),
        error,
        logs,
        run.created_at,
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
