"""The dev stack's Postgres: which server and database to use, the embedded server, the
schemas, the account.

Order of choice: DATABASE_URL; else the local server (`ROOMHOOKS_DEV_LOCAL_POSTGRES_URL`,
default 127.0.0.1:5432); else an embedded server from the `pgserver` package, with its data
under the state folder. On either of the last two the database is the checkout's own
(`choose_database`), created if missing, so two checkouts on one machine never share one.
pgserver, run as root, creates a system user to own that data; its `pg_ctl` starts the
postmaster in a session of its own, so a terminal's Ctrl-C reaches only the dev stack, which
then stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib
import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import asyncpg
import structlog

from devtool.cli_support import one_line
from shared.db import (
    apply_migrations,
    create_pool,
    ensure_database,
    with_database,
)
from shared.kafka import Topics
from shared.settings import PostgresSettings

# The registry's admin module loads most of the registry (0.15 s): the functions of the dev
# stack that use it import it, so a CLI command that only needs a pool stays quick.
if TYPE_CHECKING:
    from services.registry.admin import AccountKeys

log = structlog.get_logger(__name__)

DEV_ACCOUNT_NAME = "dev"
PROBE_TIMEOUT_S = 3.0
# What a connection attempt raises when the server is not there or refuses us.
UNREACHABLE = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class PostgresUnavailable(RuntimeError):
    """No usable Postgres; the message says which and why, on one line."""


# --- which database (pure) -----------------------------------------------------------------

# The one database every checkout's dev stack used before each got its own: kept by a
# checkout whose run.env names it, so that no one's data goes out of sight.
SHARED_DATABASE = "roomhooks"


@dataclass(frozen=True)
class DatabaseChoice:
    name: str
    why: str  # for the banner


def checkout_database(state_dir: str) -> str:
    """`roomhooks_` and the first 8 hex digits of the SHA-256 of the state folder's real path
    (`<checkout>/.roomhooks` for `make run`): where its run.env and secrets key live."""
    return "roomhooks_" + hashlib.sha256(state_dir.encode()).hexdigest()[:8]


def database_in(url: str | None) -> str | None:
    """The database a URL names, or None when it names none."""
    return (urlsplit(url).path.lstrip("/") or None) if url else None


def choose_database(*, named: str | None, previous: str | None, state_dir: str) -> DatabaseChoice:
    """The database the dev stack uses on a server it chose (the local or the embedded one).

    `named`: the database ROOMHOOKS_DEV_LOCAL_POSTGRES_URL names (used as named); `previous`:
    the one this checkout's run.env names. The shared `roomhooks` is kept when run.env names
    it (this checkout used it before); anything else gets the checkout's own database.
    """
    if named:
        return DatabaseChoice(named, "named in ROOMHOOKS_DEV_LOCAL_POSTGRES_URL")
    if previous == SHARED_DATABASE:
        return DatabaseChoice(
            SHARED_DATABASE, "this checkout's earlier runs used it, so it keeps it"
        )
    return DatabaseChoice(checkout_database(state_dir), "this checkout's own")


def shared_database_note(
    choice: DatabaseChoice, *, shared_exists: bool, shared_url: str
) -> str | None:
    """For a checkout that gets its own database while the shared one of earlier runs is still
    on the server: that it is left as it was, and how to use it. None otherwise."""
    if choice.name == SHARED_DATABASE or not shared_exists:
        return None
    return (
        f"{SHARED_DATABASE}, the database every checkout shared before, is left as it was;"
        f" DATABASE_URL={shared_url} makes this stack use it"
    )


# --- which server --------------------------------------------------------------------------


@dataclass
class ChosenPostgres:
    url: str
    source: str  # "DATABASE_URL", "local server" or "embedded"
    embedded: Any = None  # the pgserver handle when we started or adopted one

    async def close(self) -> None:
        """Stop the embedded server, if this is one; a chosen external server is left alone."""
        if self.embedded is not None:
            server, self.embedded = self.embedded, None
            await asyncio.to_thread(server.cleanup)
            log.info("postgres.embedded_stopped")


async def choose_postgres(
    *, database_url: str | None, local_url: str, database: str, pgdata: Path
) -> ChosenPostgres:
    """DATABASE_URL as it is; else `database` on the local server, else on an embedded one."""
    if database_url:
        await _ensure_reachable(database_url, source="DATABASE_URL")
        return ChosenPostgres(database_url, "DATABASE_URL")
    reason = await _probe(with_database(local_url, "postgres"))
    if reason is None:
        url = with_database(local_url, database)
        await ensure_database(url)
        return ChosenPostgres(url, "local server")
    log.info("postgres.local_unavailable", reason=reason)
    return await _start_embedded(pgdata, database=database)


async def database_exists(url: str, name: str) -> bool:
    """Whether the server of `url` holds a database `name` (False when it cannot say)."""
    try:
        conn = await asyncpg.connect(with_database(url, "postgres"), timeout=PROBE_TIMEOUT_S)
    except UNREACHABLE:
        return False
    try:
        return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
    finally:
        await conn.close()


async def _probe(url: str) -> str | None:
    """None when a server answers at `url`, else why not."""
    try:
        conn = await asyncpg.connect(url, timeout=PROBE_TIMEOUT_S)
    except UNREACHABLE as exc:
        return one_line(exc)
    await conn.close()
    return None


async def _ensure_reachable(url: str, *, source: str) -> None:
    reason = await _probe(url)
    if reason is not None and "does not exist" in reason:
        with contextlib.suppress(*UNREACHABLE):
            await ensure_database(url)
        reason = await _probe(url)
    if reason is not None:
        raise PostgresUnavailable(f"{source}: cannot connect to Postgres ({reason})")


async def _start_embedded(pgdata: Path, *, database: str) -> ChosenPostgres:
    with warnings.catch_warnings():
        # On import pgserver asks platformdirs for a runtime folder to hold its lock file;
        # without XDG_RUNTIME_DIR (root in a container, CI) platformdirs warns and falls back
        # to a private one under /tmp, which serves as well: nothing for the user to do.
        warnings.filterwarnings("ignore", message=r"XDG_RUNTIME_DIR .*falling back")
        import pgserver  # only when no server answers: it sets up its paths on import

    # pgserver narrates every command at INFO.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    log.info("postgres.embedded_starting", pgdata=str(pgdata))
    try:
        server = await asyncio.to_thread(pgserver.get_server, pgdata, cleanup_mode="stop")
    except Exception as exc:  # pgserver raises whatever initdb or pg_ctl raised
        raise PostgresUnavailable(f"embedded Postgres in {pgdata} did not start ({exc})") from exc
    url = server.get_uri(database)
    chosen = ChosenPostgres(url, "embedded", embedded=server)
    try:
        await ensure_database(url)
    except BaseException:
        await chosen.close()
        raise
    log.info("postgres.embedded_started", pgdata=str(pgdata), pid=server.get_pid())
    return chosen


def service_schema(service: str) -> str:
    """The schema a service owns: `services.<name>.SCHEMA` when its package names one, else
    its name."""
    return getattr(importlib.import_module(f"services.{service}"), "SCHEMA", service)


async def migrate_all(url: str, services: list[str]) -> None:
    """Apply the pending migrations each service ships (`services/<name>/migrations`), as
    the services do on start, so that the stack has its schemas before any service runs."""
    conn = await asyncpg.connect(url)
    try:
        for service in services:
            await apply_migrations(
                conn, schema=service_schema(service), package=f"services.{service}"
            )
    finally:
        await conn.close()


# --- the development account ---------------------------------------------------------------


async def dev_account(url: str, previous: Mapping[str, str]) -> tuple[AccountKeys, bool]:
    """The account and keys of the previous run.env when still valid here, else new ones
    (through the registry's admin module). Returns (account, reused)."""
    from services.registry import admin as registry_admin

    old = registry_admin.AccountKeys(
        previous.get("ROOMHOOKS_ACCOUNT_ID", ""),
        previous.get("ROOMHOOKS_OWNER_TOKEN", ""),
        previous.get("ROOMHOOKS_MEMBER_TOKEN", ""),
    )
    pool = await create_pool(PostgresSettings(url=url, pool_min_size=1, pool_max_size=2))
    try:
        return await registry_admin.keep_or_create_account(pool, DEV_ACCOUNT_NAME, old)
    finally:
        await pool.close()


async def reannounce_registry(url: str, topics: Topics) -> tuple[int, int]:
    """Announce every webhook and workflow again, through the registry's outbox (the registry's
    relay publishes them): a restarted dev broker has forgotten `roomhooks.registry`, and a
    fanout that starts after that must still find every subscription. Real Kafka keeps the
    compacted topic, so production needs none of this. Returns (webhooks, workflows)."""
    from services.registry import admin as registry_admin

    pool = await create_pool(PostgresSettings(url=url, pool_min_size=1, pool_max_size=2))
    try:
        webhooks, workflows = await registry_admin.reannounce(pool, topics)
    finally:
        await pool.close()
    log.info("dev.registry_reannounced", webhooks=webhooks, workflows=workflows)
    return webhooks, workflows
