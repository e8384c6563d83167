"""The bindings' projection in a real Postgres: a batch of changes applied in bulk reads back
as if every change had been applied one after another."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.workflow_runner import projection_store
from services.workflow_runner.projection import DeleteUser, PutFile, PutKv, PutRoom, PutUser

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
ORG, OTHER = "org-a", "org-b"


async def apply(pool, *changes) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await projection_store.apply(conn, list(changes), now=NOW)


async def test_a_batch_that_writes_a_row_several_times_keeps_its_last_value(pool):
    await apply(
        pool,
        PutRoom(ORG, "r1", {"id": "r1", "name": "first"}),
        PutUser(ORG, "r1", "u1", {"id": "u1", "name": "Ada"}),
        PutRoom(ORG, "r1", {"id": "r1", "name": "last"}),
        PutUser(ORG, "r1", "u1", {"id": "u1", "name": "Ada Lovelace"}),
        PutKv(ORG, "r1", "notes", "k", {"v": 1}),
        PutKv(ORG, "r1", "notes", "k", [1, 2, 3]),
        PutFile(ORG, "r1", "a.txt", {"size": 1}),
        PutFile(ORG, "r1", "a.txt", {"size": 2}),
    )
    async with pool.acquire() as conn:
        assert await projection_store.room(conn, ORG, "r1") == {"id": "r1", "name": "last"}
        users = await projection_store.room_users(conn, ORG, "r1")
        assert users == [{"id": "u1", "name": "Ada Lovelace"}]
        assert await projection_store.kv_get(conn, ORG, "r1", "notes", "k") == [1, 2, 3]
        assert await projection_store.files(conn, ORG, "r1") == [{"path": "a.txt", "size": 2}]


async def test_deletes_in_a_later_batch_remove_only_their_own_rows(pool):
    await apply(
        pool,
        PutUser(ORG, "r1", "u1", {"id": "u1"}),
        PutUser(ORG, "r1", "u2", {"id": "u2"}),
        PutUser(OTHER, "r1", "u1", {"id": "u1", "org": "b"}),
        PutKv(ORG, "r1", "s", "gone", 1),
        PutKv(ORG, "r1", "s", "kept", False),
        PutFile(ORG, "r1", "gone.txt", {}),
        PutFile(ORG, "r1", "kept.txt", {}),
    )
    await apply(
        pool,
        DeleteUser(ORG, "r1", "u1"),
        PutKv(ORG, "r1", "s", "gone", None),
        PutFile(ORG, "r1", "gone.txt", None),
    )
    async with pool.acquire() as conn:
        assert await projection_store.room_users(conn, ORG, "r1") == [{"id": "u2"}]
        kept = await projection_store.room_users(conn, OTHER, "r1")
        assert kept == [{"id": "u1", "org": "b"}]
        assert await projection_store.kv_all(conn, ORG, "r1", "s") == {"kept": False}
        assert await projection_store.files(conn, ORG, "r1") == [{"path": "kept.txt"}]


async def test_a_put_after_a_delete_in_the_same_batch_brings_the_row_back(pool):
    await apply(pool, PutUser(ORG, "r1", "u1", {"id": "u1", "v": 1}))
    await apply(
        pool,
        DeleteUser(ORG, "r1", "u1"),
        PutUser(ORG, "r1", "u1", {"id": "u1", "v": 2}),
        PutKv(ORG, "r1", "s", "k", None),
        PutKv(ORG, "r1", "s", "k", "back"),
    )
    async with pool.acquire() as conn:
        assert await projection_store.room_users(conn, ORG, "r1") == [{"id": "u1", "v": 2}]
        assert await projection_store.kv_get(conn, ORG, "r1", "s", "k") == "back"
