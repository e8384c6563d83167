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
    DeleteUser,
    PutFile,
    PutKv,
    PutRoom,
    PutUser,
)

MAX_LIST = 1000  # rows a binding returns at most


async def apply(conn: asyncpg.Connection, changes: Sequence[Change], *, now: datetime) -> None:
    for change in changes:
        match change:
            case PutRoom(org, room, data):
                await conn.execute(
                    "INSERT INTO workflow.rooms (organization_id, room_id, data, updated_at)"
                    " VALUES ($1, $2, $3, $4) ON CONFLICT (organization_id, room_id)"
                    " DO UPDATE SET data = EXCLUDED.data, updated_at = EXCLUDED.updated_at",
                    org,
                    room,
                    data,
                    now,
                )
            case PutUser(org, room, user, data):
                await conn.execute(
                    "INSERT INTO workflow.room_users"
                    " (organization_id, room_id, user_id, data, updated_at)"
                    " VALUES ($1, $2, $3, $4, $5)"
                    " ON CONFLICT (organization_id, room_id, user_id)"
                    " DO UPDATE SET data = EXCLUDED.data, updated_at = EXCLUDED.updated_at",
                    org,
                    room,
                    user,
                    data,
                    now,
                )
            case DeleteUser(org, room, user):
                await conn.execute(
                    "DELETE FROM workflow.room_users"
                    " WHERE organization_id = $1 AND room_id = $2 AND user_id = $3",
                    org,
                    room,
                    user,
                )
            case PutKv(org, room, store, key, None):
                await conn.execute(
                    "DELETE FROM workflow.kv_entries WHERE organization_id = $1"
                    " AND room_id = $2 AND store = $3 AND key = $4",
                    org,
                    room,
                    store,
                    key,
                )
            case PutKv(org, room, store, key, value):
                await conn.execute(
                    "INSERT INTO workflow.kv_entries"
                    " (organization_id, room_id, store, key, value, updated_at)"
                    " VALUES ($1, $2, $3, $4, $5::text::jsonb, $6)"
                    " ON CONFLICT (organization_id, room_id, store, key)"
                    " DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at",
                    org,
                    room,
                    store,
                    key,
                    json.dumps(value),
                    now,
                )
            case PutFile(org, room, path, None):
                await conn.execute(
                    "DELETE FROM workflow.files"
                    " WHERE organization_id = $1 AND room_id = $2 AND path = $3",
                    org,
                    room,
                    path,
                )
            case PutFile(org, room, path, metadata):
                await conn.execute(
                    "INSERT INTO workflow.files (organization_id, room_id, path, metadata,"
                    " updated_at) VALUES ($1, $2, $3, $4, $5)"
                    " ON CONFLICT (organization_id, room_id, path)"
                    " DO UPDATE SET metadata = EXCLUDED.metadata,"
                    " updated_at = EXCLUDED.updated_at",
                    org,
                    room,
                    path,
                    metadata,
                    now,
                )


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
