"""The migration runner and the pool factory against a real Postgres."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from structlog.testing import capture_logs

from shared.db import (
    AUTOVACUUM_OFF,
    MigrationBlocked,
    apply_migrations,
    autovacuum_warning,
    create_pool,
    ensure_database,
    migration_files,
    prepare_schema,
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


@pytest.mark.parametrize("keep_session", [True, False], ids=["kept-session", "reset-session"])
async def test_a_pools_statements_are_planned_once_without_their_values(database_url, keep_session):
    # Left to Postgres (`auto`), the first five runs of a prepared statement are each planned
    # for their values; a pool's never are, before or after its connection is released.
    settings = PostgresSettings(url=database_url, pool_min_size=1, pool_max_size=1)
    pool = await create_pool(settings, keep_session=keep_session)
    statement = "SELECT count(*) FROM pg_class WHERE relpages > $1"
    try:
        for value in range(3):
            async with pool.acquire() as conn:
                await conn.fetchval(statement, value)
        async with pool.acquire() as conn:
            plans = await conn.fetchrow(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
                " WHERE statement = $1",
                statement,
            )
        assert (plans["generic_plans"], plans["custom_plans"]) == (3, 0)
    finally:
        await pool.close()


def _migrations_package(root, monkeypatch, files: dict[str, str]) -> str:
    """An importable package of its own under `root` whose migrations are `files`."""
    name = f"rh_migrations_{uuid.uuid4().hex[:8]}"
    folder = root / name / "migrations"
    folder.mkdir(parents=True)
    (root / name / "__init__.py").write_text("")
    for file, sql in files.items():
        (folder / file).write_text(sql)
    monkeypatch.syspath_prepend(str(root))
    return name


async def _holding_a_read_of(url: str, table: str) -> asyncpg.Connection:
    """A connection in a transaction that has read `table`: it holds the table's lock until it
    ends, as any long query does."""
    conn = await asyncpg.connect(url)
    await conn.execute("BEGIN")
    await conn.fetch(f"SELECT * FROM {table}")
    return conn


async def _lock_awaited(conn: asyncpg.Connection, table: str) -> None:
    """Return once a session waits for a lock on `table`."""
    while not await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE relation = $1::regclass AND NOT granted)",
        table,
    ):
        await asyncio.sleep(0.01)


async def test_a_migration_behind_a_long_query_lets_writes_through_and_applies_once_it_ends(
    database_url, tmp_path, monkeypatch
):
    package = _migrations_package(
        tmp_path, monkeypatch, {"0001_init.sql": "CREATE TABLE notes (id int);"}
    )
    conn = await asyncpg.connect(database_url)
    writer = await asyncpg.connect(database_url)
    reader = migrating = None
    try:
        await apply_migrations(conn, schema="mig", package=package)
        (tmp_path / package / "migrations" / "0002_more.sql").write_text(
            "ALTER TABLE notes ADD COLUMN more text;"
        )
        reader = await _holding_a_read_of(database_url, "mig.notes")
        migrating = asyncio.create_task(
            apply_migrations(conn, schema="mig", package=package, lock_timeout="100ms", pause_s=0.2)
        )
        await asyncio.wait_for(_lock_awaited(writer, "mig.notes"), 30)
        # Behind a migration waiting for the table's lock with no timeout, this insert would
        # queue until the reader ends, and the reader ends only after it.
        await asyncio.wait_for(writer.execute("INSERT INTO mig.notes VALUES (1)"), 30)
        assert not migrating.done()
        await reader.execute("COMMIT")
        assert await asyncio.wait_for(migrating, 30) == ["0002_more"]
        assert await conn.fetchval("SELECT count(more) + count(*) FROM mig.notes") == 1
    finally:
        if migrating is not None and not migrating.done():
            migrating.cancel()
        for c in (conn, writer, reader):
            if c is not None:
                await c.close()


async def test_a_migration_that_never_gets_its_locks_fails_naming_it_and_applies_nothing(
    database_url, tmp_path, monkeypatch
):
    package = _migrations_package(
        tmp_path, monkeypatch, {"0001_init.sql": "CREATE TABLE notes (id int);"}
    )
    conn = await asyncpg.connect(database_url)
    reader = None
    try:
        await apply_migrations(conn, schema="mig", package=package)
        (tmp_path / package / "migrations" / "0002_more.sql").write_text(
            "ALTER TABLE notes ADD COLUMN more text;"
        )
        reader = await _holding_a_read_of(database_url, "mig.notes")
        with pytest.raises(MigrationBlocked, match=r"migration mig 0002_more .* in \d+ tries over"):
            await apply_migrations(
                conn,
                schema="mig",
                package=package,
                lock_timeout="50ms",
                pause_s=0.1,
                patience_s=0.5,
            )
        await reader.execute("COMMIT")
        assert await conn.fetchval("SELECT max(version) FROM mig.schema_migrations") == "0001_init"
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'mig'"
                " AND table_name = 'notes' AND column_name = 'more'"
            )
            == 0
        )
    finally:
        for c in (conn, reader):
            if c is not None:
                await c.close()


def test_only_a_server_without_autovacuum_gets_a_warning():
    assert autovacuum_warning("off") == AUTOVACUUM_OFF
    assert autovacuum_warning("on") is None


@pytest.mark.parametrize(
    ("production", "level"), [(True, "warning"), (False, "info")], ids=["production", "dev"]
)
async def test_a_service_start_says_when_the_server_runs_without_autovacuum(
    database_url, production, level
):
    # Whichever way this server is set, the line follows its setting: a warning in
    # production, information in development (a short run on a server not ours to set).
    settings = PostgresSettings(url=database_url)
    conn = await asyncpg.connect(database_url)
    try:
        setting = await conn.fetchval("SHOW autovacuum")
        with capture_logs() as logs:
            await prepare_schema(
                conn,
                settings,
                schema="delivery",
                package="services.delivery",
                production=production,
            )
    finally:
        await conn.close()
    said = [(e["log_level"], e["advice"]) for e in logs if e["event"] == "db.autovacuum_off"]
    assert said == ([(level, AUTOVACUUM_OFF)] if setting == "off" else [])
