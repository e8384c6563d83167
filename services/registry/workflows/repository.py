"""asyncpg SQL for workflows (registry schema) and reads of their executions (workflow schema)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from uuid import UUID

import asyncpg

from services.registry import outbox
from services.registry.audit import repository as audit_log
from services.registry.audit.models import AuditEntry
from services.registry.outbox import OutboxEntry
from services.registry.quota import check_quota
from services.registry.workflows.models import ExecutionRow, SavedByRow, VersionRow, WorkflowRow
from services.registry.workflows.stats import ExecutionCounts
from shared.partitions import Span, day_start, kept_span, planned_limit, within_span

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
    " logs, created_at, fetches"
)

After = tuple[datetime, UUID] | None
# One execution by id: its created_at (the partition key) is not known here, so each partition
# is probed on its primary key (one probe a day kept or made ahead, and the default's).
EXECUTION = (
    f"SELECT {_EXECUTION_COLUMNS} FROM workflow.executions"
    " WHERE id = $1 AND workflow_id = $2 AND organization_id = $3"
)


# A version's saver is the audit entry its save wrote in the same transaction: same account
# and target, a change of `version` to this number, stamped by the same clock moments after
# the version (a minute either way is margin). The audit log's (account_id, created_at) index
# reads those few moments; an expired entry leaves `saved_by` null.
_VERSIONS = """
SELECT v.workflow_id, v.version, v.language, v.created_at{code},
       a.actor, a.key_id, a.key_label, a.role
FROM registry.workflow_versions v
JOIN registry.workflows w ON w.id = v.workflow_id
LEFT JOIN LATERAL (
    SELECT actor, key_id, key_label, role FROM registry.audit_log a
    WHERE a.account_id = w.organization_id
      AND a.created_at BETWEEN v.created_at - interval '1 minute'
                           AND v.created_at + interval '1 minute'
      AND a.target_id = w.id::text
      AND a.action IN ('workflow.created', 'workflow.updated')
      AND a.changes @> jsonb_build_array(jsonb_build_object('field', 'version', 'value', v.version))
    ORDER BY a.created_at LIMIT 1
) a ON true
WHERE w.organization_id = $1 AND w.id = $2 AND {which}
"""
VERSIONS_PAGE = _VERSIONS.format(
    code="", which="($3::int IS NULL OR v.version < $3) ORDER BY v.version DESC LIMIT $4"
)
VERSION = _VERSIONS.format(code=", v.code", which="v.version = $3")


def _version(record: asyncpg.Record) -> VersionRow:
    saved_by = None
    if record["actor"] is not None:
        saved_by = SavedByRow(
            record["actor"], record["key_id"], record["key_label"], record["role"]
        )
    return VersionRow(
        workflow_id=record["workflow_id"],
        version=record["version"],
        language=record["language"],
        created_at=record["created_at"],
        saved_by=saved_by,
        code=record.get("code"),
    )


def executions_query(
    organization_id: UUID,
    workflow_id: UUID,
    *,
    status: str | None,
    limit: int,
    after: After,
    kept: Span | None = None,
) -> tuple[str, list[object]]:
    """The statement and arguments of one page of a workflow's executions, newest first by
    (created_at, id); `kept`: the days an execution can have (`kept_span`), as literals. A
    first page reads up to `planned_limit(limit)` rows: keep the first `limit`. It names only
    the filters given: a catch-all `$n IS NULL OR ...`, planned once generically, would keep
    the cursor from the index and from pruning the days after it."""
    args: list[object] = [workflow_id, organization_id]
    where = ["workflow_id = $1", "organization_id = $2"]
    if kept is not None:
        where.append(within_span("created_at", kept))
    if status is not None:
        args.append(status)
        where.append(f"status = ${len(args)}")
    if after is not None:
        args += [after[0], after[1]]
        at, last = f"${len(args) - 1}", f"${len(args)}"
        # The second condition adds nothing but lets Postgres skip the days after the cursor.
        where.append(f"(created_at, id) < ({at}, {last}) AND created_at <= {at}")
        args.append(limit)
    # A first page runs from one cached plan; after a cursor, each is planned for its values.
    rows = str(planned_limit(limit)) if after is None else f"${len(args)}"
    sql = (
        f"SELECT {_EXECUTION_COLUMNS} FROM workflow.executions WHERE {' AND '.join(where)}"
        f" ORDER BY created_at DESC, id DESC LIMIT {rows}"
    )
    return sql, args


def stats_query(
    organization_id: UUID, workflow_id: UUID, *, period_s: int, since: datetime, days: Span
) -> tuple[str, list[object]]:
    """The statement and arguments of a workflow's execution counts from `since`: a row per
    bucket of `period_s` seconds that has executions, and the total (`start` NULL). `days`:
    whole days holding `since` and now, as literals, so only their partitions are planned;
    each is read on `executions_log_idx` from `since` on, never the workflow's older runs."""
    statuses = ", ".join(
        f"count(*) FILTER (WHERE status = '{status}') AS {status}"
        for status in ("running", "success", "error", "timeout")
    )
    sql = (
        f"SELECT start, {statuses},"
        " percentile_disc(0.95) WITHIN GROUP (ORDER BY duration_ms) AS duration_p95_ms"
        f" FROM (SELECT date_bin(interval '{int(period_s)} seconds', created_at, $3) AS start,"
        " status, duration_ms FROM workflow.executions"
        " WHERE workflow_id = $1 AND organization_id = $2 AND created_at >= $3"
        f" AND {within_span('created_at', days)}) e"
        " GROUP BY GROUPING SETS ((start), ())"
    )
    return sql, [workflow_id, organization_id, since]


def stats_days(since: datetime, now: datetime, retention_days: int | None) -> Span:
    """The whole UTC days an execution from `since` on can have (to the end of tomorrow, as
    `kept_span`), none before the oldest day retention keeps."""
    today = now.astimezone(UTC).date()
    start = day_start(since.astimezone(UTC).date())
    if retention_days is not None:
        start = max(start, kept_span(today, retention_days)[0])
    return start, kept_span(today, 0)[1]


def _row(record: asyncpg.Record) -> WorkflowRow:
    return WorkflowRow(**dict(record))


class WorkflowSql:
    """WorkflowWrites (and the reads) on one connection, inside the caller's transaction."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def check_quota(self, organization_id: UUID, quota: int) -> None:
        await check_quota(self._conn, "workflows", organization_id, quota)

    async def insert(self, row: WorkflowRow) -> None:
        await self._conn.execute(
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
        await self.insert_version(row, kept=1)  # its first: nothing older to forget

    async def insert_version(self, row: WorkflowRow, *, kept: int) -> None:
        await self._conn.execute(
            "INSERT INTO registry.workflow_versions (workflow_id, version, language, code,"
            " created_at) VALUES ($1, $2, $3, $4, $5)",
            row.id,
            row.version,
            row.language,
            row.code,
            row.updated_at,
        )
        if row.version <= kept:
            return
        await self._conn.execute(
            "DELETE FROM registry.workflow_versions WHERE workflow_id = $1 AND version <= $2",
            row.id,
            row.version - kept,
        )

    async def get(
        self, organization_id: UUID, workflow_id: UUID, *, for_update: bool = False
    ) -> WorkflowRow | None:
        lock = " FOR UPDATE OF w" if for_update else ""
        record = await self._conn.fetchrow(
            f"SELECT {_COLUMNS} FROM {_FROM} WHERE w.organization_id = $1 AND w.id = $2{lock}",
            organization_id,
            workflow_id,
        )
        return _row(record) if record else None

    async def get_for_update(self, organization_id: UUID, workflow_id: UUID) -> WorkflowRow | None:
        return await self.get(organization_id, workflow_id, for_update=True)

    async def page(self, organization_id: UUID, *, limit: int, after: After) -> list[WorkflowRow]:
        records = await self._conn.fetch(
            f"SELECT {_COLUMNS} FROM {_FROM} WHERE w.organization_id = $1"
            " AND ($2::timestamptz IS NULL OR (w.created_at, w.id) < ($2, $3::uuid))"
            " ORDER BY w.created_at DESC, w.id DESC LIMIT $4",
            organization_id,
            after[0] if after else None,
            after[1] if after else None,
            limit,
        )
        return [_row(r) for r in records]

    async def update(self, row: WorkflowRow) -> None:
        await self._conn.execute(
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

    async def delete(self, organization_id: UUID, workflow_id: UUID) -> bool:
        result = await self._conn.execute(
            "DELETE FROM registry.workflows WHERE organization_id = $1 AND id = $2",
            organization_id,
            workflow_id,
        )
        return result.endswith(" 1")

    async def all(self) -> list[WorkflowRow]:
        records = await self._conn.fetch(f"SELECT {_COLUMNS} FROM {_FROM} ORDER BY w.id")
        return [_row(r) for r in records]

    async def enqueue(self, entries: Sequence[OutboxEntry]) -> None:
        await outbox.enqueue(self._conn, entries)

    async def audit(self, entry: AuditEntry) -> None:
        await audit_log.insert(self._conn, entry)

    async def versions(
        self, organization_id: UUID, workflow_id: UUID, *, limit: int, before: int | None
    ) -> list[VersionRow]:
        records = await self._conn.fetch(VERSIONS_PAGE, organization_id, workflow_id, before, limit)
        return [_version(r) for r in records]

    async def version(
        self, organization_id: UUID, workflow_id: UUID, version: int
    ) -> VersionRow | None:
        record = await self._conn.fetchrow(VERSION, organization_id, workflow_id, version)
        return _version(record) if record else None

    async def executions(
        self,
        organization_id: UUID,
        workflow_id: UUID,
        *,
        status: str | None,
        limit: int,
        after: After,
        kept: Span | None = None,
    ) -> list[ExecutionRow]:
        sql, args = executions_query(
            organization_id, workflow_id, status=status, limit=limit, after=after, kept=kept
        )
        records = await self._conn.fetch(sql, *args)
        return [ExecutionRow(**dict(r)) for r in records[:limit]]

    async def execution(
        self, organization_id: UUID, workflow_id: UUID, execution_id: UUID
    ) -> ExecutionRow | None:
        record = await self._conn.fetchrow(EXECUTION, execution_id, workflow_id, organization_id)
        return ExecutionRow(**dict(record)) if record else None


class PostgresWorkflows:
    """WorkflowRepository on Postgres: reads on a pooled connection, writes in a transaction.
    Given `retention_days`, a page of executions reads only the days an execution can have on
    the day `clock` says (`kept_span`); without, every day and the default partition."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        retention_days: int | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._pool = pool
        self._retention_days = retention_days
        self._clock = clock

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[WorkflowSql]:
        async with self._pool.acquire() as conn, conn.transaction():
            yield WorkflowSql(conn)

    async def get(self, organization_id: UUID, workflow_id: UUID) -> WorkflowRow | None:
        async with self._pool.acquire() as conn:
            return await WorkflowSql(conn).get(organization_id, workflow_id)

    async def page(self, organization_id: UUID, *, limit: int, after: After) -> list[WorkflowRow]:
        async with self._pool.acquire() as conn:
            return await WorkflowSql(conn).page(organization_id, limit=limit, after=after)

    async def versions(
        self, organization_id: UUID, workflow_id: UUID, *, limit: int, before: int | None
    ) -> list[VersionRow]:
        async with self._pool.acquire() as conn:
            return await WorkflowSql(conn).versions(
                organization_id, workflow_id, limit=limit, before=before
            )

    async def version(
        self, organization_id: UUID, workflow_id: UUID, version: int
    ) -> VersionRow | None:
        async with self._pool.acquire() as conn:
            return await WorkflowSql(conn).version(organization_id, workflow_id, version)

    async def executions(
        self,
        organization_id: UUID,
        workflow_id: UUID,
        *,
        status: str | None,
        limit: int,
        after: After,
    ) -> list[ExecutionRow]:
        days = self._retention_days
        kept = None if days is None else kept_span(self._clock().astimezone(UTC).date(), days)
        async with self._pool.acquire() as conn:
            return await WorkflowSql(conn).executions(
                organization_id, workflow_id, status=status, limit=limit, after=after, kept=kept
            )

    async def stats(
        self, organization_id: UUID, workflow_id: UUID, *, period_s: int, since: datetime
    ) -> list[ExecutionCounts]:
        days = stats_days(since, self._clock(), self._retention_days)
        sql, args = stats_query(
            organization_id, workflow_id, period_s=period_s, since=since, days=days
        )
        records = await self._pool.fetch(sql, *args)
        return [ExecutionCounts(**dict(r)) for r in records]

    async def execution(
        self, organization_id: UUID, workflow_id: UUID, execution_id: UUID
    ) -> ExecutionRow | None:
        async with self._pool.acquire() as conn:
            return await WorkflowSql(conn).execution(organization_id, workflow_id, execution_id)
