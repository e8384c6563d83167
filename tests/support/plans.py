"""Plans of the statements an adapter runs, for tests that check which indexes and which
partitions they read: a stand-in connection keeps the statements (running none), and each is
then run under EXPLAIN ANALYZE in a transaction rolled back, with Postgres's plan for the
values or the generic plan it caches once a prepared statement has run a few times."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

import asyncpg


class KeptStatements:
    """Stands in for a connection or a pool: keeps each statement and its arguments, runs
    none, and answers as if nothing matched."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, tuple[Any, ...]]] = []

    async def fetch(self, sql: str, *args: Any) -> list:
        self.statements.append((sql, args))
        return []

    async def fetchrow(self, sql: str, *args: Any) -> None:
        self.statements.append((sql, args))

    async def fetchval(self, sql: str, *args: Any) -> None:
        self.statements.append((sql, args))

    async def execute(self, sql: str, *args: Any) -> str:
        self.statements.append((sql, args))
        return "UPDATE 0"


class _RolledBack(Exception):
    pass


async def executed_plan(
    conn: asyncpg.Connection, sql: str, args: tuple[Any, ...], *, generic: bool
) -> dict:
    """The plan of `sql` run with `args` (EXPLAIN ANALYZE, FORMAT JSON), its changes rolled
    back. `generic`: the plan made without the values (PREPARE, then EXECUTE under
    force_generic_plan), where only what is known as the plan starts or runs prunes."""
    plan: Any = None
    try:
        async with conn.transaction():
            if generic:
                await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
                await conn.execute(f"PREPARE kept_statement AS {sql}")
                try:
                    values = ", ".join(literal(a) for a in args)
                    plan = await conn.fetchval(
                        f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE kept_statement({values})"
                    )
                finally:
                    await conn.execute("DEALLOCATE kept_statement")
            else:
                plan = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", *args)
            raise _RolledBack
    except _RolledBack:
        pass
    return (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]


def literal(value: Any) -> str:
    """`value` as an SQL literal for EXECUTE (its type comes from the prepared statement)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | tuple):
        items = ("NULL" if v is None else '"' + _array_escaped(str(v)) + '"' for v in value)
        return _quoted("{" + ",".join(items) + "}")
    return _quoted(str(value))


def _array_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def nodes(plan: dict) -> Iterator[dict]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def scans_run(plan: dict, table: str) -> list[dict]:
    """The scans of `table`'s partitions (`table_p...`, `table_default`) that ran: a scan
    pruned as the plan started is not in it, one pruned as it ran never looped."""
    return [
        node
        for node in nodes(plan)
        if "Scan" in node["Node Type"]
        and str(node.get("Relation Name", "")).startswith(f"{table}_")
        and node.get("Actual Loops", 0) > 0
    ]


def rows_read(scans: Iterable[dict]) -> int:
    """What `scans` (nodes of an EXPLAIN ANALYZE) read over all their loops, kept or discarded
    by a filter: a page read in index order stops once it is full."""
    return sum(
        (scan["Actual Rows"] + scan.get("Rows Removed by Filter", 0)) * scan["Actual Loops"]
        for scan in scans
    )


async def parent_indexes(conn: asyncpg.Connection, schema: str) -> dict[str, str]:
    """Each partition's index -> the index of its parent table it was made from (the
    partitioned table's index names are what a test names)."""
    rows = await conn.fetch(
        "SELECT c.relname AS child, p.relname AS parent FROM pg_inherits i"
        " JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind = 'i' AND n.nspname = $1",
        schema,
    )
    return {r["child"]: r["parent"] for r in rows}


async def nested_plans(conn: asyncpg.Connection, run: Callable[[], Awaitable[Any]]) -> list[dict]:
    """The executed plans of every statement `run` makes on `conn`, those run inside functions
    and triggers included (auto_explain, loaded into this session only, sends each plan to
    the client as a notice), its changes kept."""
    messages: list[str] = []

    def keep(_conn: Any, message: Any) -> None:
        messages.append(message.message)

    await conn.execute(
        "LOAD 'auto_explain'; "
        + "; ".join(f"SET auto_explain.{name} = {value}" for name, value in _AUTO_EXPLAIN.items())
    )
    conn.add_log_listener(keep)
    try:
        await run()
    finally:
        conn.remove_log_listener(keep)
        await conn.execute("SET auto_explain.log_min_duration = -1")
    return [json.loads(text.split("plan:", 1)[1])["Plan"] for text in messages if "plan:" in text]


_AUTO_EXPLAIN = {
    "log_min_duration": "0",
    "log_nested_statements": "on",
    "log_analyze": "on",
    "log_timing": "off",
    "log_format": "json",
    "log_level": "notice",
}
