"""asyncpg SQL of the projection: writes from the runner's consumers, reads for the bindings;
and `PostgresProjection`, the ProjectionStore (dependencies.py) over it.

Every read is bounded to one organization and one room: a workflow sees its event's room only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import structlog

from services.workflow_runner.connection_shares import ConnectionShares
from services.workflow_runner.projection import (
    Change,
    collapse,
    row_of,
)
from services.workflow_runner.storable import storable_json
from shared.failures import describe, is_content_error, storable_text

log = structlog.get_logger(__name__)

MAX_LIST = 1000  # rows a binding returns at most


# Each projected table: its key columns and its one jsonb column.
_TABLES: dict[str, tuple[tuple[str, ...], str]] = {
    "rooms": (("organization_id", "room_id"), "data"),
    "room_users": (("organization_id", "room_id", "user_id"), "data"),
    "kv_entries": (("organization_id", "room_id", "store", "key"), "value"),
    "files": (("organization_id", "room_id", "path"), "metadata"),
}


# A projected value larger than this is passed over with its reason: a binding returns up to
# MAX_LIST rows in one answer, and 1,000 values of 256 KiB already make 256 MB.
MAX_VALUE_BYTES = 256 * 1024
# A row's key in UTF-8, at most: a btree index entry holds about 2,700 bytes, and Postgres
# refuses a longer one with SQLSTATE 54000, which would not read as the row's fault.
MAX_KEY_BYTES = 2000


@dataclass(frozen=True)
class Row:
    """One row to write: its table, key and jsonb text (None: delete the row)."""

    table: str
    key: tuple[str, ...]
    text: str | None


@dataclass
class Rows:
    """A batch made ready to write: the rows, and what was cleaned or passed over, and why."""

    rows: list[Row] = field(default_factory=list)
    cleaned: list[tuple[Row, str]] = field(default_factory=list)
    skipped: list[tuple[str, tuple[str, ...], str]] = field(default_factory=list)


def rows_of(changes: Sequence[Change]) -> Rows:
    """Pure: one row per changed row (`collapse`), ids and values as Postgres takes them (NUL
    and lone surrogates escaped, storable.py); a value too large or too deep is passed over."""
    out = Rows()
    for change in collapse(changes):
        table, raw_key, value = row_of(change)
        key = tuple(storable_text(part) for part in raw_key)
        reasons = ["an id escaped"] if key != raw_key else []
        key_bytes = sum(len(part.encode()) for part in key)
        if key_bytes > MAX_KEY_BYTES:
            reason = f"ids of {key_bytes} bytes, the limit is {MAX_KEY_BYTES}"
            out.skipped.append((table, key, reason))
            continue
        text = None
        if value is not None:
            try:
                stored = storable_json(value)
            except RecursionError:
                out.skipped.append((table, key, "nested too deep to store"))
                continue
            if len(stored.text) > MAX_VALUE_BYTES:
                reason = f"value of {len(stored.text)} bytes, the limit is {MAX_VALUE_BYTES}"
                out.skipped.append((table, key, reason))
                continue
            text = stored.text
            reasons.extend(stored.cleaned)
        row = Row(table, key, text)
        out.rows.append(row)
        if reasons:
            out.cleaned.append((row, ", ".join(reasons)))
    return out


async def apply(conn: asyncpg.Connection, changes: Sequence[Change], *, now: datetime) -> Rows:
    """`rows_of(changes)` written in one go (`write`); returns them with what was cleaned."""
    rows = rows_of(changes)
    await write(conn, rows.rows, now=now)
    return rows


async def write(conn: asyncpg.Connection, rows: Sequence[Row], *, now: datetime) -> None:
    """Write a batch of rows (at most one per key) in one statement: an upsert and a delete
    per table that has any, each a data-modifying `WITH` part, so the batch is atomic without
    a transaction's `BEGIN` and `COMMIT` (two round trips a batch, 9 % of the runner's samples
    at 1,000 events/s). At thousands of events a second, a statement per change cost the
    runner a fifth of a core with no workflow at all. A row whose value is already the one
    written is left as it is (`updated_at` is when its value last changed): most events repeat
    their room and user, and a rewrite is a new row version, its WAL and its vacuum."""
    upserts: dict[str, list[tuple[str, ...]]] = {}
    deletes: dict[str, list[tuple[str, ...]]] = {}
    for row in rows:
        if row.text is None:
            deletes.setdefault(row.table, []).append(row.key)
        else:
            upserts.setdefault(row.table, []).append((*row.key, row.text))
    if not upserts and not deletes:
        return
    parts: list[str] = []
    args: list[Any] = [now] if upserts else []  # $1: every upsert's updated_at
    for table, values in upserts.items():
        keys, column = _TABLES[table]
        n = len(keys)
        arrays = _text_arrays(n + 1, after=len(args))
        args.extend(list(column_values) for column_values in zip(*values, strict=True))
        parts.append(
            f"INSERT INTO workflow.{table} ({', '.join(keys)}, {column}, updated_at)"
            f" SELECT {_columns(n)}, c{n}::jsonb, $1"
            f" FROM unnest({arrays}) AS t({_columns(n + 1)})"
            f" ON CONFLICT ({', '.join(keys)})"
            f" DO UPDATE SET {column} = EXCLUDED.{column}, updated_at = EXCLUDED.updated_at"
            f" WHERE {table}.{column} IS DISTINCT FROM EXCLUDED.{column}"
        )
    for table, values in deletes.items():
        keys, _column = _TABLES[table]
        matches = " AND ".join(f"x.{k} = t.c{i}" for i, k in enumerate(keys))
        arrays = _text_arrays(len(keys), after=len(args))
        args.extend(list(column_values) for column_values in zip(*values, strict=True))
        parts.append(
            f"DELETE FROM workflow.{table} x"
            f" USING unnest({arrays}) AS t({_columns(len(keys))})"
            f" WHERE {matches}"
        )
    # Each part's rows are distinct keys (`collapse`), so no two parts touch one row.
    written = ", ".join(f"w{i} AS ({part})" for i, part in enumerate(parts))
    await conn.execute(f"WITH {written} SELECT", *args)


async def write_each(
    conn: asyncpg.Connection, rows: Sequence[Row], *, now: datetime
) -> list[tuple[Row, Exception]]:
    """Write the rows one by one: the fallback when a batch fails on its content, so one row
    Postgres refuses does not hold back the others. Returns the rows refused for their
    content; any other failure (an outage) is raised as it is."""
    refused = []
    for row in rows:
        try:
            await write(conn, [row], now=now)
        except Exception as exc:
            if not is_content_error(exc):
                raise
            refused.append((row, exc))
    return refused


def _columns(n: int) -> str:
    return ", ".join(f"c{i}" for i in range(n))


def _text_arrays(n: int, *, after: int) -> str:
    """`n` text-array parameters, numbered on from the `after` before them."""
    return ", ".join(f"${after + i + 1}::text[]" for i in range(n))


async def room(conn: asyncpg.Connection, org: str, room_id: str) -> dict[str, Any] | None:
    return await conn.fetchval(
        "SELECT data FROM workflow.rooms WHERE organization_id = $1 AND room_id = $2",
        org,
        room_id,
    )


async def room_users(conn: asyncpg.Connection, org: str, room_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT data FROM workflow.room_users WHERE organization_id = $1 AND room_id = $2"
        " ORDER BY user_id LIMIT $3",
        org,
        room_id,
        MAX_LIST,
    )
    return [r["data"] for r in rows]


async def kv_get(conn: asyncpg.Connection, org: str, room_id: str, store: str, key: str) -> Any:
    raw = await conn.fetchval(
        "SELECT value::text FROM workflow.kv_entries"
        " WHERE organization_id = $1 AND room_id = $2 AND store = $3 AND key = $4",
        org,
        room_id,
        store,
        key,
    )
    return None if raw is None else json.loads(raw)


async def kv_all(conn: asyncpg.Connection, org: str, room_id: str, store: str) -> dict[str, Any]:
    rows = await conn.fetch(
        "SELECT key, value::text AS value FROM workflow.kv_entries"
        " WHERE organization_id = $1 AND room_id = $2 AND store = $3 ORDER BY key LIMIT $4",
        org,
        room_id,
        store,
        MAX_LIST,
    )
    return {r["key"]: json.loads(r["value"]) for r in rows}


async def files(conn: asyncpg.Connection, org: str, room_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT path, metadata FROM workflow.files WHERE organization_id = $1 AND room_id = $2"
        " ORDER BY path LIMIT $3",
        org,
        room_id,
        MAX_LIST,
    )
    return [{"path": r["path"], **r["metadata"]} for r in rows]


class PostgresProjection:
    """The projection in Postgres: batches written on `pool` (the projection consumer's), the
    bindings' reads through each organization's share of the runs' connections."""

    def __init__(self, pool: asyncpg.Pool, shares: ConnectionShares) -> None:
        self._pool = pool
        self._shares = shares

    async def write(self, rows: Sequence[Row], *, now: datetime) -> list[tuple[Row, Exception]]:
        async with self._pool.acquire() as conn:
            try:
                await write(conn, rows, now=now)
            except Exception as exc:
                if not is_content_error(exc):
                    raise
                log.warning("workflows.projection_batch_refused", rows=len(rows),
                            error=describe(exc))  # fmt: skip
                return await write_each(conn, rows, now=now)
        return []

    async def room(self, org: str, room_id: str) -> dict[str, Any] | None:
        async with self._shares.acquire(org) as conn:
            return await room(conn, org, room_id)

    async def room_users(self, org: str, room_id: str) -> list[dict[str, Any]]:
        async with self._shares.acquire(org) as conn:
            return await room_users(conn, org, room_id)

    async def kv_get(self, org: str, room_id: str, store: str, key: str) -> Any:
        async with self._shares.acquire(org) as conn:
            return await kv_get(conn, org, room_id, store, key)

    async def kv_all(self, org: str, room_id: str, store: str) -> dict[str, Any]:
        async with self._shares.acquire(org) as conn:
            return await kv_all(conn, org, room_id, store)

    async def files(self, org: str, room_id: str) -> list[dict[str, Any]]:
        async with self._shares.acquire(org) as conn:
            return await files(conn, org, room_id)
