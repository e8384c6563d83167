"""Postgres helpers: the pool factory and the per-service migration runner.

Each service owns one schema and keeps plain SQL files in its `migrations/` folder
(`0001_init.sql`, `0002_...sql`). `apply_migrations` runs the new ones in order, each in
its own transaction, under an advisory lock so replicas starting together apply them once.
A migration waits at most MIGRATION_LOCK_TIMEOUT for a table's lock, then gives way and tries
again: a long query on a table it changes never queues every write to that table behind it.
A service applies them at start (`ROOMHOOKS_MIGRATE_ON_START`), or only checks that the
migrate step (shared/migrate.py) has (`prepare_schema`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import structlog

from shared.partitions import LOCK_TIMEOUT as MIGRATION_LOCK_TIMEOUT
from shared.retention import RetentionPlan, prepare_partitions
from shared.settings import PostgresSettings

log = structlog.get_logger(__name__)

# One lock for every service's migrations: schemas may reference each other.
_MIGRATION_LOCK_KEY = 0x726F6F6D686F6F6B  # "roomhook"


async def _init_connection(conn: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """A released connection's reset past the rollback asyncpg always does: none."""


# asyncpg prepares every statement and runs it again and again. Left to itself (`auto`),
# Postgres plans a statement over a day-partitioned table anew on every run, for its values,
# across every partition: the generic plan's estimate counts all of them, so it never looks
# cheaper. With a month of days that planning is most of the statement (the retry claim over
# 54 partitions: 2.5 ms a run planned for its values, 0.23 ms on the generic plan; measured),
# and it grows with every day kept. A generic plan is made once and prunes as it runs; the
# plan tests (tests/support/plans.py) check each statement's generic plan reads the right
# indexes and partitions.
GENERIC_PLANS = {"plan_cache_mode": "force_generic_plan"}


async def create_pool(
    settings: PostgresSettings, *, keep_session: bool = False, max_size: int | None = None
) -> asyncpg.Pool:
    """The one way services open Postgres: JSON codecs installed, sizes from settings
    (`max_size` overrides the largest).

    A released connection is rolled back if a transaction was left open; by default asyncpg
    then also resets the session (advisory locks, LISTEN, cursors, settings: one more round
    trip per release). `keep_session` skips that, for a pool whose users leave no session
    state behind: no session advisory lock, LISTEN, plain SET or cursor outside a
    transaction (transaction-scoped locks and SET LOCAL end with their transaction).

    Every session plans a prepared statement once, without its values (`GENERIC_PLANS`)."""
    return await asyncpg.create_pool(
        dsn=settings.url,
        min_size=min(settings.pool_min_size, max_size or settings.pool_max_size),
        max_size=max_size or settings.pool_max_size,
        command_timeout=settings.command_timeout_s,
        init=_init_connection,
        reset=_keep_session if keep_session else None,
        server_settings=GENERIC_PLANS,
    )


# How long a readiness probe waits for a connection and an answer.
POSTGRES_CHECK_TIMEOUT_S = 2.0


async def postgres_check(pool: asyncpg.Pool, *, timeout_s: float = POSTGRES_CHECK_TIMEOUT_S) -> str:
    """ "ok" when the pool hands out a connection that answers, else the error's type (for
    /readyz; the pool replaces connections a restarted server dropped by itself)."""
    try:
        async with pool.acquire(timeout=timeout_s) as conn:
            await conn.fetchval("SELECT 1", timeout=timeout_s)
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return type(exc).__name__
    return "ok"


def migration_files(package: str) -> list[tuple[str, str]]:
    """(version, sql) for every `NNNN_name.sql` in `<package>.migrations`, in order."""
    folder = resources.files(package).joinpath("migrations")
    files = sorted(
        (entry.name, entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    )
    return [(Path(name).stem, sql) for name, sql in files]


@asynccontextmanager
async def migration_lock(conn: asyncpg.Connection) -> AsyncIterator[None]:
    """Hold the one migration lock (re-entrant within a session, like every advisory lock)."""
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK_KEY)
    try:
        yield
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK_KEY)


# How long apply_migrations keeps trying a migration that cannot take its locks, and how long
# it lets the writes queued behind each try through before the next.
MIGRATION_PATIENCE_S = 600.0
MIGRATION_PAUSE_S = 5.0


class SchemaNotReady(RuntimeError):
    """The schema lacks migrations this code needs, and the service may not apply them."""


class MigrationBlocked(SchemaNotReady):
    """A migration could not take its tables' locks in the time it is given."""


async def apply_migrations(
    conn: asyncpg.Connection,
    *,
    schema: str,
    package: str,
    lock_timeout: str = MIGRATION_LOCK_TIMEOUT,
    patience_s: float = MIGRATION_PATIENCE_S,
    pause_s: float = MIGRATION_PAUSE_S,
) -> list[str]:
    """Apply the service's pending migrations; returns the versions applied now.

    Each one waits at most `lock_timeout` for a lock; when that runs out it is rolled back,
    and tried again after `pause_s`, for `patience_s` in all; then MigrationBlocked, with the
    versions before it applied and nothing of it."""
    applied_now: list[str] = []
    async with migration_lock(conn):
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(
            f'CREATE TABLE IF NOT EXISTS "{schema}".schema_migrations ('
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {
            row["version"]
            for row in await conn.fetch(f'SELECT version FROM "{schema}".schema_migrations')
        }
        for version, sql in migration_files(package):
            if version in done:
                continue
            started = time.monotonic()
            attempt = 1
            while not await _try_migration(conn, schema, version, sql, lock_timeout):
                waited_s = time.monotonic() - started
                if waited_s + pause_s > patience_s:
                    raise MigrationBlocked(
                        f"migration {schema} {version} could not take its tables' locks in"
                        f" {attempt} tries over {waited_s:.1f} s (each waits {lock_timeout}):"
                        " a long transaction holds a table it changes (pg_stat_activity shows"
                        " it); end it, or run the migration when it is over"
                    )
                log.warning(
                    "db.migration_waiting",
                    schema=schema,
                    version=version,
                    attempt=attempt,
                    waited_s=round(waited_s, 1),
                    lock_timeout=lock_timeout,
                )
                await asyncio.sleep(pause_s)
                attempt += 1
            applied_now.append(version)
            log.info("db.migration_applied", schema=schema, version=version)
    return applied_now


async def _try_migration(
    conn: asyncpg.Connection, schema: str, version: str, sql: str, lock_timeout: str
) -> bool:
    """Apply one migration in a transaction of its own; False, with nothing of it applied,
    when a lock it needs was not had within `lock_timeout`."""
    try:
        async with conn.transaction():
            await conn.execute(f"SET LOCAL lock_timeout = '{lock_timeout}'")
            await conn.execute(f'SET LOCAL search_path TO "{schema}", public')
            await conn.execute(sql)
            await conn.execute(
                f'INSERT INTO "{schema}".schema_migrations (version) VALUES ($1)', version
            )
    except asyncpg.LockNotAvailableError:
        return False
    return True


# Every pool plans a statement once (`GENERIC_PLANS`) and keeps the plan until the statistics
# of a table it reads change. Autovacuum's ANALYZE changes them as a day's partition fills;
# without it a plan made while the partition was nearly empty is kept as it grows, and a
# statement that finds rows by key reads the whole partition instead (the attempt recorder's
# batch of 20: from 1 ms to 67 ms over 700,000 rows of one day; measured).
AUTOVACUUM_OFF = (
    "autovacuum is off on this server: query plans made while a day's partition was nearly"
    " empty are kept as it grows, and statements slow down with every row (dead rows pile up"
    " too). Turn it on (Postgres's default), or ANALYZE and VACUUM the roomhooks schemas"
    " at least every minute"
)


def autovacuum_warning(setting: str) -> str | None:
    """What to tell the operator about the server's `autovacuum` setting (None: on)."""
    return AUTOVACUUM_OFF if setting == "off" else None


async def warn_without_autovacuum(conn: asyncpg.Connection, *, production: bool) -> None:
    """Log `db.autovacuum_off` when the server runs without autovacuum: a warning in
    production; in development, where a run is short and the local server's settings are
    not ours to change, information."""
    warning = autovacuum_warning(await conn.fetchval("SELECT current_setting('autovacuum')"))
    if warning is not None:
        (log.warning if production else log.info)("db.autovacuum_off", advice=warning)


async def prepare_schema(
    conn: asyncpg.Connection,
    settings: PostgresSettings,
    *,
    schema: str,
    package: str,
    plan: RetentionPlan | None = None,
    production: bool = False,
) -> None:
    """At a service's start: nothing when the schema has every migration this code ships;
    else apply them (ROOMHOOKS_MIGRATE_ON_START, the default) or, when a separate migrate step
    owns that, refuse to start saying what to run. A service role, which may not change a
    schema, gets the same advice instead of a bare "permission denied". Says when the
    server runs without autovacuum (`warn_without_autovacuum`; a warning in `production`)."""
    await warn_without_autovacuum(conn, production=production)
    run = f"run `python -m {package} migrate` as the owner role first"
    try:
        missing = await missing_migrations(conn, schema=schema, package=package)
    except asyncpg.InsufficientPrivilegeError:
        raise SchemaNotReady(f"this role may not read {schema}.schema_migrations: {run}") from None
    if not missing:
        if settings.migrate_on_start and plan is not None:
            await prepare_partitions(conn, plan)  # days ahead, after a long pause of `make run`
        return
    if not settings.migrate_on_start:
        raise SchemaNotReady(
            f"schema {schema} lacks migrations {', '.join(missing)} and "
            f"ROOMHOOKS_MIGRATE_ON_START is off: {run}"
        )
    try:
        await apply_migrations(conn, schema=schema, package=package)
        if plan is not None:
            await prepare_partitions(conn, plan)
    except asyncpg.InsufficientPrivilegeError as exc:
        raise SchemaNotReady(f"this role may not migrate schema {schema} ({exc}): {run}") from None


async def missing_migrations(conn: asyncpg.Connection, *, schema: str, package: str) -> list[str]:
    """The versions `package` ships that `schema` has not recorded (all of them when the
    schema does not exist)."""
    try:
        rows = await conn.fetch(f'SELECT version FROM "{schema}".schema_migrations')
    except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
        rows = []
    done = {row["version"] for row in rows}
    return [version for version, _ in migration_files(package) if version not in done]


def with_database(url: str, database: str) -> str:
    """The same server and credentials as `url`, another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/") or "postgres"


async def ensure_database(url: str) -> bool:
    """Create the database named in `url` when it does not exist; True when created."""
    name = database_name(url)
    conn = await asyncpg.connect(with_database(url, "postgres"))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        except asyncpg.DuplicateDatabaseError:
            return False  # another process won the race
        return True
    finally:
        await conn.close()
