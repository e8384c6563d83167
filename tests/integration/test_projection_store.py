"""The bindings' projection in a real Postgres: a batch of changes applied in bulk reads back
as if every change had been applied one after another."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from services.workflow_runner import projection_store
from services.workflow_runner.projection import DeleteUser, PutFile, PutKv, PutRoom, PutUser
from shared.failures import is_content_error

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
ORG, OTHER = "org-a", "org-b"


async def apply(pool, *changes) -> projection_store.Rows:
    async with pool.acquire() as conn:  # one statement: no transaction of its own
        return await projection_store.apply(conn, list(changes), now=NOW)


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


async def _version(pool, table: str, key: str) -> tuple[str, datetime]:
    """The row's tuple version and its updated_at."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            f"SELECT xmin::text AS xmin, updated_at FROM workflow.{table}"
            " WHERE organization_id = $1 AND room_id = $2",
            ORG,
            key,
        )
    return row["xmin"], row["updated_at"]


async def test_a_row_written_again_with_the_same_value_is_not_rewritten(pool):
    later = NOW + timedelta(hours=1)
    async with pool.acquire() as conn, conn.transaction():
        await projection_store.apply(
            conn, [PutRoom(ORG, "r1", {"id": "r1", "name": "Standup"})], now=NOW
        )
    first = await _version(pool, "rooms", "r1")
    async with pool.acquire() as conn, conn.transaction():
        # The same document, its keys in another order: jsonb holds them alike.
        await projection_store.apply(
            conn, [PutRoom(ORG, "r1", {"name": "Standup", "id": "r1"})], now=later
        )
    assert await _version(pool, "rooms", "r1") == first
    async with pool.acquire() as conn, conn.transaction():
        await projection_store.apply(
            conn, [PutRoom(ORG, "r1", {"id": "r1", "name": "Retro"})], now=later
        )
    xmin, updated_at = await _version(pool, "rooms", "r1")
    assert (xmin != first[0], updated_at) == (True, later)
    async with pool.acquire() as conn:
        assert await projection_store.room(conn, ORG, "r1") == {"id": "r1", "name": "Retro"}


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


async def test_one_batch_puts_and_deletes_rows_of_every_table_at_once(pool):
    await apply(
        pool,
        PutUser(ORG, "r1", "gone", {"id": "gone"}),
        PutKv(ORG, "r1", "s", "gone", 1),
        PutFile(ORG, "r1", "gone.txt", {}),
    )
    await apply(
        pool,
        PutRoom(ORG, "r1", {"id": "r1"}),
        DeleteUser(ORG, "r1", "gone"),
        PutUser(ORG, "r1", "new", {"id": "new"}),
        PutKv(ORG, "r1", "s", "gone", None),
        PutKv(ORG, "r1", "s", "new", 2),
        PutFile(ORG, "r1", "gone.txt", None),
        PutFile(ORG, "r1", "new.txt", {"size": 3}),
    )
    async with pool.acquire() as conn:
        assert await projection_store.room(conn, ORG, "r1") == {"id": "r1"}
        assert await projection_store.room_users(conn, ORG, "r1") == [{"id": "new"}]
        assert await projection_store.kv_all(conn, ORG, "r1", "s") == {"new": 2}
        assert await projection_store.files(conn, ORG, "r1") == [{"path": "new.txt", "size": 3}]


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


async def test_ids_and_values_with_nul_or_lone_surrogates_are_stored_escaped(pool):
    rows = await apply(
        pool,
        PutUser(ORG, "r\x00", "u\ud800", {"id": "u\ud800", "name": "Gr\x00ace"}),
        PutKv(ORG, "r\x00", "notes", "k\x00", {"v\x00": "\udfff"}),
    )
    assert len(rows.cleaned) == 2 and rows.skipped == []
    async with pool.acquire() as conn:
        users = await projection_store.room_users(conn, ORG, "r\\u0000")
        assert users == [{"id": "u\\ud800", "name": "Gr\\u0000ace"}]
        stored = await projection_store.kv_get(conn, ORG, "r\\u0000", "notes", "k\\u0000")
        assert stored == {"v\\u0000": "\\udfff"}


def raw_row(user_id: str, text: str) -> projection_store.Row:
    return projection_store.Row("room_users", (ORG, "r1", user_id), text)


async def test_a_batch_refused_for_one_row_writes_nothing_then_row_by_row_all_but_that_row(pool):
    good = [raw_row("u1", '{"id": "u1"}'), raw_row("u3", '{"id": "u3"}')]
    poison = raw_row("u2", '{"name": "x\\u0000"}')  # as no Row is built: jsonb refuses it
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.PostgresError) as refused:
            await projection_store.write(conn, [good[0], poison, good[1]], now=NOW)
        assert is_content_error(refused.value)
        assert await projection_store.room_users(conn, ORG, "r1") == []  # one statement
        left_out = await projection_store.write_each(conn, [good[0], poison, good[1]], now=NOW)
        assert [(row, exc.sqlstate) for row, exc in left_out] == [(poison, "22P05")]
        users = await projection_store.room_users(conn, ORG, "r1")
    assert users == [{"id": "u1"}, {"id": "u3"}]


async def test_an_outage_during_the_row_by_row_write_is_raised_not_blamed_on_the_rows(pool):
    async with pool.acquire() as conn:
        lost = await pool.acquire()
        try:
            await conn.execute("SELECT pg_terminate_backend($1)", lost.get_server_pid())
            with pytest.raises(Exception) as outage:
                await projection_store.write_each(lost, [raw_row("u1", '{"id": "u1"}')], now=NOW)
            assert not is_content_error(outage.value)
        finally:
            await pool.release(lost)
