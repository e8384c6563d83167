"""The migration runner against a real Postgres."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from shared.db import apply_migrations, ensure_database, migration_files, with_database

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
