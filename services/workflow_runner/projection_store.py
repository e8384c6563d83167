"""asyncpg SQL of the projection: writes from the runner's consumers, reads for the bindings.

Every read is bounded to one organization and one room: a workflow sees its event's room only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from services.workflow_runner.projection import (
    Change,
    collapse,
    row_of,
)

MAX_LIST = 1000  # rows a binding returns at most


# Each projected table: its key columns and its one jsonb column.
_TABLES: dict[str, tuple[tuple[str, ...], str]] = {
    "rooms": (("organization_id", "room_id"), "data"),
    "room_users": (("organization_id", "room_id", "user_id"), "data"),
    "kv_entries": (("organization_id", "room_id", "store", "key"), "value"),
    "files": (("organization_id", "room_id", "path"), "metadata"),
}


async def apply(conn: asyncpg.Connection, changes: Sequence[Change], *, now: datetime) -> None:
    """Apply a batch of changes in at most two statements per table (upserts, deletes): at
    thousands of events a second, a statement per change cost the runner a fifth of a core
    with no workflow at all. `collapse` leaves one change per row, as one statement needs."""
    upserts: dict[str, list[tuple[str, ...]]] = {}
    deletes: dict[str, list[tuple[str, ...]]] = {}
    for change in collapse(changes):
        table, key, value = row_of(change)
        if value is None:
            deletes.setdefault(table, []).append(key)
        else:
            upserts.setdefault(table, []).append((*key, json.dumps(value)))
    for table, rows in upserts.items():
        keys, column = _TABLES[table]
        n = len(keys)
        await conn.execute(
            f"INSERT INTO workflow.{table} ({', '.join(keys)}, {column}, updated_at)"
            f" SELECT {_columns(n)}, c{n}::jsonb, ${n + 2}"
            f" FROM unnest({_text_arrays(n + 1)}) AS t({_columns(n + 1)})"
            f" ON CONFLICT ({', '.join(keys)})"
            f" DO UPDATE SET {column} = EXCLUDED.{column}, updated_at = EXCLUDED.updated_at",
            *(list(values) for values in zip(*rows, strict=True)),
            now,
        )
    for table, rows in deletes.items():
        keys, _column = _TABLES[table]
        matches = " AND ".join(f"x.{k} = t.c{i}" for i, k in enumerate(keys))
        await conn.execute(
            f"DELETE FROM workflow.{table} x"
            f" USING unnest({_text_arrays(len(keys))}) AS t({_columns(len(keys))})"
            f" WHERE {matches}",
            *(list(values) for values in zip(*rows, strict=True)),
        )


def _columns(n: int) -> str:
    return ", ".join(f"c{i}" for i in range(n))


def _text_arrays(n: int) -> str:
    return ", ".join(f"${i + 1}::text[]" for i in range(n))


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
