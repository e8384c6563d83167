"""The migration runner and the pool factory against a real Postgres."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from shared.db import (
    apply_migrations,
    create_pool,
    ensure_database,
    migration_files,
    with_database,
)
from shared.settings import PostgresSettings

pytestmark = pytest.mark.integration


async def test_migrations_apply_once_even_when_replicas_start_together(postgres_url):
    url = with_database(postgres_url, f"rh_mig_{uuid.uuid4().hex[:10]}")
    assert await ensure_database(url) is True
    assert await ensure_database(url) is False
    conns = [await asyncpg.connect(url) for _ in range(3)]
    try:
        applied = await asyncio.gather(
            *(apply_migrations(c, schema="registry", package="services.registry") for c in conns)
        )
        every = [version for version, _ in migration_files("services.registry")]
        assert every[0] == "0001_init"
        assert sorted(applied, key=len) == [[], [], every]
        again = await apply_migrations(conns[0], schema="registry", package="services.registry")
        assert again == []
        tables = await conns[0].fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'registry'"
        )
        assert {t["table_name"] for t in tables} >= {
            "accounts",
            "api_keys",
            "webhooks",
            "outbox",
            "schema_migrations",
        }
    finally:
        for c in conns:
            await c.close()
        admin = await asyncpg.connect(with_database(postgres_url, "postgres"))
        await admin.execute(f'DROP DATABASE "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
        await admin.close()


async def _released_twice(pool: asyncpg.Pool) -> tuple[str, bool]:
    """A session setting made and a transaction left open on one connection, then what the
    next user of that connection (a pool of one) sees: the setting, and whether it is in a
    transaction."""
    async with pool.acquire() as conn:
        await conn.execute("SET application_name = 'left behind'")
        await conn.execute("BEGIN")
        await conn.execute("SELECT 1")
    async with pool.acquire() as conn:
        return (
            await conn.fetchval("SELECT current_setting('application_name')"),
            conn.is_in_transaction(),
        )


async def test_a_keep_session_pool_rolls_back_what_was_left_open_but_keeps_the_session(
    database_url,
):
    settings = PostgresSettings(url=database_url, pool_min_size=1, pool_max_size=1)
    kept = await create_pool(settings, keep_session=True)
    reset = await create_pool(settings)
    try:
        assert await _released_twice(kept) == ("left behind", False)
        assert await _released_twice(reset) == ("", False)
    finally:
        await kept.close()
        await reset.close()


async def test_a_pool_max_size_given_overrides_the_settings_and_caps_the_minimum(database_url):
    settings = PostgresSettings(url=database_url, pool_min_size=4, pool_max_size=10)
    pool = await create_pool(settings, max_size=2)
    try:
        assert (pool.get_min_size(), pool.get_max_size()) == (2, 2)
    finally:
        await pool.close()
