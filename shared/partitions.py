"""Tables partitioned by time, one partition per UTC day, so that retention drops a day at a
time (a cost that does not grow with the table), and plain tables whose old rows are removed
in bounded batches on an index.

A partitioned table `t` (its migration makes the parent, `PARTITION BY RANGE (column)`, and
`t_default`, the DEFAULT partition with an index on the column) has one partition per day,
`t_pYYYYMMDD`, made `DAYS_AHEAD` days ahead by `create_partitions` (the migrate step and every
retention run). A row of a day without a partition lands in `t_default` rather than fail; a day
whose rows are already there gets no partition (attaching one would fail) and its rows leave
`t_default` in batches, as a plain table's do.

The decisions are pure functions; the statements run in `create_partitions`,
`drop_partitions` and `delete_expired`, all as the schema's owner (partitions are DDL).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import asyncpg
import structlog

log = structlog.get_logger(__name__)

# Partitions made ahead of today: a retention job stopped for this long still finds every
# day's partition there.
DAYS_AHEAD = 7
# Rows removed per statement: each batch is a short transaction of its own.
DELETE_BATCH = 5_000
# How long DDL waits for the parent's lock before giving up until the next run, so that a
# long query never queues every insert behind the job.
LOCK_TIMEOUT = "2s"

_DAY_SUFFIX = re.compile(r"_p(\d{8})$")


@dataclass(frozen=True)
class PartitionedTable:
    """A table partitioned by day on `column` (a timestamptz). `dependent`: columns a page
    filters on together whose values depend on each other (a webhook's id and its account's):
    each partition gets statistics of that dependency, or a cached generic plan, which takes
    them for independent, expects a busy webhook's page to hold a handful of rows per day and
    sorts every row it has."""

    schema: str
    table: str
    column: str
    dependent: tuple[str, ...] = ()

    @property
    def default_partition(self) -> str:
        return f"{self.table}_default"


@dataclass(frozen=True)
class ExpiringTable:
    """A plain table whose rows older than the cutoff on `column` are removed in batches;
    `keep_if` (SQL) spares rows still in use. `column` needs an index."""

    schema: str
    table: str
    column: str
    keep_if: str = "false"


def partition_name(table: str, day: date) -> str:
    return f"{table}_p{day:%Y%m%d}"


def partition_day(table: str, name: str) -> date | None:
    """The day of a partition made by `create_partitions`; None for any other name."""
    if not name.startswith(f"{table}_p"):
        return None
    found = _DAY_SUFFIX.search(name)
    if found is None or len(name) != len(table) + 10:
        return None
    try:
        return datetime.strptime(found.group(1), "%Y%m%d").date()
    except ValueError:
        return None


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def days_to_create(today: date, existing: Iterable[date], *, ahead: int = DAYS_AHEAD) -> list[date]:
    """Today and the `ahead` days after it that have no partition yet."""
    have = set(existing)
    wanted = (today + timedelta(days=n) for n in range(ahead + 1))
    return [day for day in wanted if day not in have]


def days_to_drop(existing: Iterable[date], *, cutoff: datetime) -> list[date]:
    """The partitions whose every row is older than `cutoff` (their day ended by then),
    oldest first."""
    return sorted(day for day in existing if day_start(day + timedelta(days=1)) <= cutoff)


def retention_cutoff(now: datetime, *, retention_days: int) -> datetime:
    return now - timedelta(days=retention_days)


# From a start (included) to an end (excluded).
Span = tuple[datetime, datetime]


def kept_span(today: date, retention_days: int) -> Span:
    """Every instant a row of a day-partitioned table can hold on `today`, in whole UTC days:
    from the start of the oldest day retention keeps (the cutoff's day: every earlier one is
    dropped by the day's first run) to the end of tomorrow (no row is stamped more than
    seconds after now: fanout keeps a stamp at most 10 s ahead of its clock, the registry
    stamps its pings with its own; a day's margin for clocks that differ).

    A page statement gives it as literals, so that planning leaves the default partition out
    whenever each of these days has a partition of its own (a retention run a day keeps them
    made: DAYS_AHEAD ahead), and Postgres reads the days newest first, stopping once the page
    is full, instead of merging every day's index. Whole days: the statement's text changes
    once a day, so prepared statements stay cached.
    """
    return (
        day_start(today - timedelta(days=retention_days)),
        day_start(today + timedelta(days=2)),
    )


def planned_limit(limit: int) -> int:
    """The LIMIT, written as a literal, of a page statement over day partitions that wants
    `limit` rows: `limit` rounded up to a power of two (the caller keeps the first `limit`).

    With a parameter, Postgres costs its cached generic plan for a tenth of the rows, finds it
    dearer than one planned for the values, and so plans every execution anew over every day's
    partition (about 2 ms over 39 partitions, against 0.3 ms run from the cached plan). A
    literal lets the cached plan be used; powers of two keep the statements' texts few. Only
    where one plan serves every value, as on a first page: after a cursor, a plan made without
    it guesses how many rows lie before it, and may sort them all.
    """
    if limit < 1:
        raise ValueError(f"a page wants at least one row, not {limit}")
    return 1 << (limit - 1).bit_length()


def within_span(column: str, span: Span) -> str:
    """`column` within `span` (start included, end excluded) as SQL with literal bounds: a
    parameter would leave the pruning to each execution, and the default partition in the
    plan."""
    start, end = span
    return f"{column} >= '{start.isoformat()}' AND {column} < '{end.isoformat()}'"


def _q(schema: str, name: str) -> str:
    return f'"{schema}"."{name}"'


async def existing_days(conn: asyncpg.Connection, t: PartitionedTable) -> list[date]:
    names = await conn.fetch(
        "SELECT c.relname FROM pg_inherits i"
        " JOIN pg_class c ON c.oid = i.inhrelid"
        " JOIN pg_class p ON p.oid = i.inhparent"
        " JOIN pg_namespace n ON n.oid = p.relnamespace"
        " WHERE n.nspname = $1 AND p.relname = $2",
        t.schema,
        t.table,
    )
    days = (partition_day(t.table, r["relname"]) for r in names)
    return [day for day in days if day is not None]


async def create_partitions(
    conn: asyncpg.Connection, t: PartitionedTable, *, today: date, ahead: int = DAYS_AHEAD
) -> list[str]:
    """Make today's partition and the next `ahead` days' where missing; the names made.

    A day some of whose rows already sit in the default partition is skipped (logged): its
    rows stay there and leave by `delete_expired`.
    """
    made = []
    for day in days_to_create(today, await existing_days(conn, t), ahead=ahead):
        start, end = day_start(day), day_start(day + timedelta(days=1))
        if await _default_holds(conn, t, start, end):
            log.warning("partitions.day_in_default", table=t.table, day=day.isoformat())
            continue
        name = partition_name(t.table, day)
        try:
            async with conn.transaction():
                await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                await conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {_q(t.schema, name)} PARTITION OF"
                    f" {_q(t.schema, t.table)} FOR VALUES FROM ('{start.isoformat()}')"
                    f" TO ('{end.isoformat()}')"
                )
        except (asyncpg.DuplicateTableError, asyncpg.UniqueViolationError):
            continue  # a replica starting at the same moment made it
        except asyncpg.LockNotAvailableError:
            log.warning("partitions.create_postponed", table=t.table, partition=name)
            break
        made.append(name)
    if made:
        log.info("partitions.created", table=t.table, partitions=made)
    await add_dependency_statistics(conn, t)
    return made


async def add_dependency_statistics(conn: asyncpg.Connection, t: PartitionedTable) -> list[str]:
    """Give every partition of `t` that has none (the default one included) the statistics of
    its `dependent` columns, and ANALYZE those holding rows so that they are built now:
    autovacuum would not for a day no longer written to. An empty one is left to autovacuum as
    it fills: analyzed empty, the planner would take it for empty until then. The partitions
    given them."""
    if not t.dependent:
        return []
    missing = await conn.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = $1::regclass"
        " AND NOT EXISTS (SELECT 1 FROM pg_statistic_ext s WHERE s.stxrelid = c.oid)",
        _q(t.schema, t.table),
    )
    given = []
    for name in (r["relname"] for r in missing):
        partition = _q(t.schema, name)
        try:
            await conn.execute(
                f"CREATE STATISTICS IF NOT EXISTS {_q(t.schema, f'{name}_dependencies')}"
                f" (dependencies) ON {', '.join(t.dependent)} FROM {partition}"
            )
        except (asyncpg.DuplicateObjectError, asyncpg.UniqueViolationError):
            continue  # a replica starting at the same moment gave them
        if await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {partition})"):
            await conn.execute(f"ANALYZE {partition}")
        given.append(name)
    if given:
        log.info("partitions.statistics_added", table=t.table, partitions=given)
    return given


async def _default_holds(
    conn: asyncpg.Connection, t: PartitionedTable, start: datetime, end: datetime
) -> bool:
    return bool(
        await conn.fetchval(
            f"SELECT EXISTS (SELECT 1 FROM {_q(t.schema, t.default_partition)}"
            f' WHERE "{t.column}" >= $1 AND "{t.column}" < $2)',
            start,
            end,
        )
    )


async def drop_partitions(
    conn: asyncpg.Connection, t: PartitionedTable, *, cutoff: datetime
) -> list[str]:
    """Drop every partition whose day ended before `cutoff`; the names dropped. A drop that
    cannot have the parent's lock within LOCK_TIMEOUT is left for the next run."""
    dropped = []
    for day in days_to_drop(await existing_days(conn, t), cutoff=cutoff):
        name = partition_name(t.table, day)
        try:
            async with conn.transaction():
                await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                await conn.execute(f"DROP TABLE IF EXISTS {_q(t.schema, name)}")
        except asyncpg.LockNotAvailableError:
            log.warning("partitions.drop_postponed", table=t.table, partition=name)
            break  # oldest first: the next run starts again from this one
        dropped.append(name)
    if dropped:
        log.info("partitions.dropped", table=t.table, partitions=dropped)
    return dropped


async def delete_expired(
    conn: asyncpg.Connection,
    schema: str,
    table: str,
    column: str,
    *,
    cutoff: datetime,
    keep_if: str = "false",
    batch: int = DELETE_BATCH,
) -> int:
    """Delete the rows older than `cutoff`, `batch` at a time (each a short transaction of
    its own, found on the index of `column`); how many were deleted."""
    total = 0
    while True:
        status = await conn.execute(
            f"DELETE FROM {_q(schema, table)} WHERE ctid = ANY(ARRAY("
            f'SELECT ctid FROM {_q(schema, table)} WHERE "{column}" < $1'
            f" AND NOT ({keep_if}) LIMIT $2))",
            cutoff,
            batch,
        )
        deleted = int(status.split()[-1])
        total += deleted
        if deleted < batch:
            return total
