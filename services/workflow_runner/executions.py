"""asyncpg SQL of the execution log: one row per run, idempotent on its key (the run id and
the request's created_at, the table's partition key: each statement names both, so Postgres
reaches one day's partition); and `PostgresExecutions`, the ExecutionStore (dependencies.py)
over it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import structlog

from services.workflow_runner import projection_store
from services.workflow_runner.connection_shares import ConnectionShares
from services.workflow_runner.dependencies import Begun, Ended
from services.workflow_runner.projection import Change
from shared.failures import describe, is_content_error, storable_text
from shared.messages import WorkflowRunRequested

log = structlog.get_logger(__name__)

MAX_EVENT_NAME = 200


class PostgresExecutions:
    """The execution log in Postgres; each run's statements take a connection through its
    organization's share (connection_shares.py)."""

    def __init__(self, shares: ConnectionShares) -> None:
        self._shares = shares

    async def begin(
        self, run: WorkflowRunRequested, changes: Sequence[Change], *, now: datetime
    ) -> Begun | None:
        async with self._shares.acquire(run.organization_id) as conn, conn.transaction():
            # What this transaction writes need not be durable, so its commit does not wait
            # for the WAL flush (an fsync: 50-250 ms at times in `make chaos`'s sandbox
            # scenario, before the code could start): `finish` writes the whole row, whether
            # or not the `running` one survived a Postgres crash, and the event's room and user
            # reach the projection through its own consumer too.
            await conn.execute("SET LOCAL synchronous_commit TO OFF")
            if not await begin(conn, run, now=now):
                return None
            source = await code_of(conn, run.workflow_id, run.version)
            return Begun(source, await _project(conn, changes, now=now))

    async def finish(self, run: WorkflowRunRequested, ended: Ended, *, now: datetime) -> None:
        async with self._shares.acquire(run.organization_id) as conn:
            await finish(
                conn,
                run,
                status=ended.status,
                started_at=ended.started_at,
                duration_ms=ended.duration_ms,
                result=ended.result,
                error=ended.error,
                logs=ended.logs,
                fetches=ended.fetches,
                now=now,
            )


async def _project(conn: asyncpg.Connection, changes: Sequence[Change], *, now: datetime) -> int:
    """The run's own event into the projection, in the run's transaction; a row Postgres
    refuses is left to the projection consumer (which writes the others row by row)."""
    if not changes:
        return 0
    try:
        async with conn.transaction():  # a savepoint: a refused row spoils nothing else
            rows = await projection_store.apply(conn, changes, now=now)
    except Exception as exc:
        if not is_content_error(exc):
            raise
        log.warning("workflows.run_projection_refused", error=describe(exc))
        return 0
    return len(rows.rows)


async def begin(conn: asyncpg.Connection, run: WorkflowRunRequested, *, now: datetime) -> bool:
    """Record the run as `running`; False when it already ran (a re-read request).

    A run left `running` by a process that died is taken again: at-least-once. The runner
    commits this row without waiting for its flush (service.py): `finish` does not count on it.
    """
    inserted = await conn.fetchval(
        "INSERT INTO workflow.executions (id, workflow_id, organization_id, version, event_id,"
        " event, status, started_at, created_at, updated_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, 'running', $7, $8, $7)"
        " ON CONFLICT (id, created_at) DO UPDATE SET started_at = EXCLUDED.started_at,"
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
    fetches: list[dict[str, Any]] | None = None,
) -> None:
    """Record how the run ended: the whole row, whether or not its `running` row is there (a
    Postgres crash may have lost it, as it was not flushed)."""
    await conn.execute(
        "INSERT INTO workflow.executions (id, workflow_id, organization_id, version, event_id,"
        " event, status, started_at, duration_ms, result, error, logs, created_at, updated_at,"
        " fetches)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::text::jsonb, $11, $12, $13, $14, $15)"
        " ON CONFLICT (id, created_at) DO UPDATE SET status = EXCLUDED.status,"
        " started_at = EXCLUDED.started_at, duration_ms = EXCLUDED.duration_ms,"
        " result = EXCLUDED.result, error = EXCLUDED.error, logs = EXCLUDED.logs,"
        " updated_at = EXCLUDED.updated_at, fetches = EXCLUDED.fetches",
        *_identity(run),
        status,
        started_at,
        duration_ms,
        None if result is None else json.dumps(result),
        error,
        logs,
        run.created_at,
        now,
        fetches,
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
