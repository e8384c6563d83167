"""The bench's stand-in for autovacuum, on a server where it is off (some CI machines').

Without it nothing analyzes the tables the run fills: a plan made while a day's partition was
nearly empty is kept as the partition grows, and a statement that finds its rows by key reads
the whole partition instead (the recorder's batch went from 1 ms to 67 ms over 700,000 rows
of one day), which no deployment's Postgres does. So, as autovacuum would, every
`autovacuum_naptime` seconds this reads the bench database's table statistics and runs
`ANALYZE` or `VACUUM` on each table past the server's own autovacuum thresholds, throttled
by its cost settings. The decision is `due`, pure; `AutovacuumStandIn` does the I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import asyncpg

# The server's autovacuum settings this reads (each a current_setting name).
SETTINGS = (
    "autovacuum_naptime",
    "autovacuum_vacuum_threshold",
    "autovacuum_vacuum_scale_factor",
    "autovacuum_vacuum_insert_threshold",
    "autovacuum_vacuum_insert_scale_factor",
    "autovacuum_analyze_threshold",
    "autovacuum_analyze_scale_factor",
    "autovacuum_vacuum_cost_delay",
    "autovacuum_vacuum_cost_limit",
    "vacuum_cost_limit",
)

# Ordinary tables of the bench database (partitions included; autovacuum never processes a
# partitioned parent) with the counts autovacuum decides on.
_STATS = """
SELECT format('%I.%I', s.schemaname, s.relname) AS name, greatest(c.reltuples, 0) AS reltuples,
       s.n_dead_tup AS dead, s.n_ins_since_vacuum AS inserted,
       s.n_mod_since_analyze AS modified
FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
WHERE c.relkind = 'r'
"""


@dataclass(frozen=True)
class Thresholds:
    """autovacuum's formulas: a table is due once its count passes base + factor * reltuples."""

    vacuum: float = 50
    vacuum_factor: float = 0.2
    vacuum_insert: float = 1000
    vacuum_insert_factor: float = 0.2
    analyze: float = 50
    analyze_factor: float = 0.1

    @classmethod
    def of(cls, settings: dict[str, str]) -> Thresholds:
        return cls(
            vacuum=float(settings["autovacuum_vacuum_threshold"]),
            vacuum_factor=float(settings["autovacuum_vacuum_scale_factor"]),
            vacuum_insert=float(settings["autovacuum_vacuum_insert_threshold"]),
            vacuum_insert_factor=float(settings["autovacuum_vacuum_insert_scale_factor"]),
            analyze=float(settings["autovacuum_analyze_threshold"]),
            analyze_factor=float(settings["autovacuum_analyze_scale_factor"]),
        )


@dataclass(frozen=True)
class TableCounts:
    name: str
    reltuples: float
    dead: int
    inserted: int
    modified: int


def due(tables: list[TableCounts], t: Thresholds) -> list[str]:
    """The statements autovacuum's choice comes to: `VACUUM`, `ANALYZE` or both, per table
    past the thresholds, in the order given."""
    statements = []
    for table in tables:
        vacuum = (
            table.dead > t.vacuum + t.vacuum_factor * table.reltuples
            or table.inserted > t.vacuum_insert + t.vacuum_insert_factor * table.reltuples
        )
        analyze = table.modified > t.analyze + t.analyze_factor * table.reltuples
        if vacuum and analyze:
            statements.append(f"VACUUM (ANALYZE) {table.name}")
        elif vacuum:
            statements.append(f"VACUUM {table.name}")
        elif analyze:
            statements.append(f"ANALYZE {table.name}")
    return statements


def cost_settings(settings: dict[str, str]) -> dict[str, str]:
    """The session settings that throttle a manual VACUUM or ANALYZE as autovacuum throttles
    its own (a cost limit of -1: autovacuum takes the plain one). Values in the settings'
    base units, as pg_settings gives them."""
    limit = settings["autovacuum_vacuum_cost_limit"]
    return {
        "vacuum_cost_delay": settings["autovacuum_vacuum_cost_delay"],
        "vacuum_cost_limit": settings["vacuum_cost_limit"] if limit == "-1" else limit,
    }


@dataclass
class Tally:
    """What the stand-in did over a run (the bench's details)."""

    rounds: int = 0
    vacuums: int = 0
    analyzes: int = 0
    busy_s: float = 0.0
    errors: list[str] = field(default_factory=list)


class AutovacuumStandIn:
    """Runs `due`'s choice against one database every naptime, until stopped."""

    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self.tally = Tally()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        conn = await asyncpg.connect(self._url)
        try:  # the connection is the task's once it starts; closed here if it never does
            rows = await conn.fetch(
                "SELECT name, setting AS value FROM pg_settings WHERE name = ANY($1::text[])",
                list(SETTINGS),
            )
            settings = {r["name"]: r["value"] for r in rows}
            for name, value in cost_settings(settings).items():
                await conn.execute(f"SET {name} = '{value}'")
        except BaseException:
            await conn.close()
            raise
        naptime_s = float(settings["autovacuum_naptime"])  # seconds, its base unit
        self._task = asyncio.create_task(self._run(conn, Thresholds.of(settings), naptime_s))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(
        self, conn: asyncpg.Connection, thresholds: Thresholds, naptime_s: float
    ) -> None:
        try:
            while True:
                await asyncio.sleep(naptime_s)
                started = time.monotonic()
                try:
                    await self.visit(conn, thresholds)
                except Exception as exc:  # noqa: BLE001 - counted in the table; the run goes on
                    self.tally.errors.append(f"{type(exc).__name__}: {exc}"[:200])
                self.tally.busy_s += time.monotonic() - started
                if conn.is_closed():
                    return  # its connection is gone: the table says how far it got
        finally:
            await conn.close()

    async def visit(self, conn: asyncpg.Connection, thresholds: Thresholds) -> list[str]:
        """One round: the statements `due` picks from the database's statistics, run; each
        returned."""
        rows = await conn.fetch(_STATS)
        tables = [
            TableCounts(r["name"], r["reltuples"], r["dead"], r["inserted"], r["modified"])
            for r in rows
        ]
        self.tally.rounds += 1
        statements = due(tables, thresholds)
        for statement in statements:
            await conn.execute(statement)
            self.tally.vacuums += statement.startswith("VACUUM")
            self.tally.analyzes += "ANALYZE" in statement
        return statements
