"""Retention: rows older than ROOMHOOKS_RETENTION_DAYS leave each schema, by day partitions
dropped whole and plain tables emptied in bounded batches (shared/partitions.py).

One job per schema, `run_retention`, which any number of processes may start at once: a
session advisory lock of that schema lets one run and the others return at once. It runs as
the schema's owner: `python -m services.<name> retention` (a Kubernetes CronJob, or a loop with
`--every`), or inside the service itself when the service holds the owner role
(ROOMHOOKS_MIGRATE_ON_START, the developer's setup).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
import structlog

from shared.partitions import (
    DAYS_AHEAD,
    ExpiringTable,
    PartitionedTable,
    create_partitions,
    delete_expired,
    drop_partitions,
    retention_cutoff,
)
from shared.settings import PostgresSettings

log = structlog.get_logger(__name__)

# pg_try_advisory_lock's first key for retention (the second is the schema's hash): apart
# from the migration lock's.
_LOCK_CLASS = 0x5245_54


@dataclass(frozen=True)
class RetentionPlan:
    """What one schema keeps for a limited time."""

    schema: str
    partitioned: tuple[PartitionedTable, ...] = ()
    expiring: tuple[ExpiringTable, ...] = ()


class RetentionRefused(PermissionError):
    """This role may not run the schema's retention: only its owner makes and drops partitions
    (a service role could delete rows, but never keep a partitioned table in bounds)."""


async def check_owner(conn: asyncpg.Connection, schema: str) -> None:
    """Refuse, before any change, a role that does not own `schema`, saying what to run."""
    row = await conn.fetchrow(
        "SELECT current_user AS role, pg_has_role(current_user, nspowner, 'USAGE') AS owns"
        " FROM pg_namespace WHERE nspname = $1",
        schema,
    )
    if row is None:
        raise RetentionRefused(f"schema {schema} does not exist: run the migrate step first")
    if not row["owns"]:
        raise RetentionRefused(
            f"role {row['role']} does not own schema {schema}: run retention as the owner role"
            " (the migrate step's DATABASE_URL)"
        )


@dataclass
class RetentionReport:
    schema: str
    ran: bool = False  # False: another process held the schema's lock
    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    deleted: dict[str, int] = field(default_factory=dict)
    took_s: float = 0.0


async def prepare_partitions(
    conn: asyncpg.Connection, plan: RetentionPlan, *, now: datetime | None = None
) -> list[str]:
    """Today's partition and the next days', for every partitioned table of the plan (after
    the migrations: the first rows then land in their day's partition)."""
    today = (now or datetime.now(UTC)).date()
    made: list[str] = []
    for table in plan.partitioned:
        made += await create_partitions(conn, table, today=today)
    return made


async def run_retention(
    conn: asyncpg.Connection,
    plan: RetentionPlan,
    *,
    retention_days: int,
    now: datetime | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> RetentionReport:
    """One retention run of the plan's schema, unless another process is running it;
    RetentionRefused when this role does not own the schema."""
    await check_owner(conn, plan.schema)
    report = RetentionReport(plan.schema)
    if not await conn.fetchval(
        "SELECT pg_try_advisory_lock($1, hashtext($2))", _LOCK_CLASS, plan.schema
    ):
        log.info("retention.skipped", schema=plan.schema, reason="another process runs it")
        return report
    started = clock()
    try:
        report.ran = True
        await _run_locked(conn, plan, report, retention_days=retention_days, now=now)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1, hashtext($2))", _LOCK_CLASS, plan.schema)
    report.took_s = round(clock() - started, 3)
    log.info(
        "retention.done",
        schema=plan.schema,
        created=len(report.created),
        dropped=report.dropped,
        deleted=report.deleted,
        took_s=report.took_s,
    )
    return report


async def _run_locked(
    conn: asyncpg.Connection,
    plan: RetentionPlan,
    report: RetentionReport,
    *,
    retention_days: int,
    now: datetime | None,
) -> None:
    now = now or datetime.now(UTC)
    cutoff = retention_cutoff(now, retention_days=retention_days)
    for table in plan.partitioned:
        report.created += await create_partitions(conn, table, today=now.date(), ahead=DAYS_AHEAD)
        report.dropped += await drop_partitions(conn, table, cutoff=cutoff)
        report.deleted[table.default_partition] = await delete_expired(
            conn, table.schema, table.default_partition, table.column, cutoff=cutoff
        )
    for plain in plan.expiring:
        report.deleted[plain.table] = await delete_expired(
            conn, plain.schema, plain.table, plain.column, cutoff=cutoff, keep_if=plain.keep_if
        )


async def retention_loop(
    pool: asyncpg.Pool, plan: RetentionPlan, settings: PostgresSettings
) -> None:
    """Run retention now and then every ROOMHOOKS_RETENTION_EVERY_S, until cancelled. A run
    refused for a lack of rights stops the loop (it would be refused every time); any other
    failure is logged and tried again at the next turn."""
    while True:
        try:
            async with pool.acquire() as conn:
                await run_retention(conn, plan, retention_days=settings.retention_days)
        except (asyncpg.InsufficientPrivilegeError, RetentionRefused) as exc:
            log.error(
                "retention.not_allowed",
                schema=plan.schema,
                error=str(exc),
                advice="run `python -m services.<name> retention` as the schema's owner",
            )
            return
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning(
                "retention.failed", schema=plan.schema, error=f"{type(exc).__name__}: {exc}"
            )
        await asyncio.sleep(settings.retention_every_s)


RETENTION_USAGE = "usage: python -m services.<name> retention [--every SECONDS]"


def parse_every(args: list[str]) -> float | None:
    """The command's arguments: none (one run) or `--every SECONDS` (a run every so often)."""
    if not args:
        return None
    if len(args) == 2 and args[0] == "--every":
        try:
            every = float(args[1])
        except ValueError:
            every = 0.0
        if every > 0:
            return every
    raise ValueError(RETENTION_USAGE)


async def _command(settings: PostgresSettings, plan: RetentionPlan, every_s: float | None) -> None:
    while True:
        conn = await asyncpg.connect(settings.url)
        try:
            await run_retention(conn, plan, retention_days=settings.retention_days)
        finally:
            await conn.close()
        if every_s is None:
            return
        await asyncio.sleep(every_s)


def retention_main(settings: PostgresSettings, plan: RetentionPlan, args: list[str]) -> int:
    """`python -m services.<name> retention [--every SECONDS]`, as the schema's owner: one run
    (a Kubernetes CronJob), or one every so often (a compose service). Exit 0 when done, 1
    with the reason logged, 2 for arguments it does not take."""
    try:
        every_s = parse_every(args)
    except ValueError as exc:
        log.critical("retention.bad_arguments", error=str(exc))
        return 2
    try:
        asyncio.run(_command(settings, plan, every_s))
    except RetentionRefused as exc:
        log.critical("retention.not_allowed", schema=plan.schema, error=str(exc))
        return 1
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        log.critical("retention.failed", schema=plan.schema, error=f"{type(exc).__name__}: {exc}")
        return 1
    return 0
