"""The dev stack's Postgres: which server to use, the embedded one, the schemas, the account.

Order of choice: DATABASE_URL; else the local server (`ROOMHOOKS_DEV_LOCAL_POSTGRES_URL`,
default 127.0.0.1:5432, database `roomhooks` created if missing); else an embedded server
from the `pgserver` package, with its data under the state folder. pgserver, run as root,
creates a system user to own that data; its `pg_ctl` starts the postmaster in a session of its
own, so a terminal's Ctrl-C reaches only the dev stack, which then stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import structlog

from services.registry import admin as registry_admin
from services.registry.admin import AccountKeys
from shared.db import (
    apply_migrations,
    create_pool,
    database_name,
    ensure_database,
    with_database,
)
from shared.kafka import Topics
from shared.settings import PostgresSettings

log = structlog.get_logger(__name__)

DEV_ACCOUNT_NAME = "dev"
PROBE_TIMEOUT_S = 3.0
# What a connection attempt raises when the server is not there or refuses us.
UNREACHABLE = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class PostgresUnavailable(RuntimeError):
    """No usable Postgres; the message says which and why, on one line."""


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
    *, database_url: str | None, local_url: str, pgdata: Path
) -> ChosenPostgres:
    if database_url:
        await _ensure_reachable(database_url, source="DATABASE_URL")
        return ChosenPostgres(database_url, "DATABASE_URL")
    reason = await _probe(with_database(local_url, "postgres"))
    if reason is None:
        await ensure_database(local_url)
        return ChosenPostgres(local_url, "local server")
    log.info("postgres.local_unavailable", reason=reason)
    return await _start_embedded(pgdata, database=database_name(local_url))


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
    old = AccountKeys(
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
    pool = await create_pool(PostgresSettings(url=url, pool_min_size=1, pool_max_size=2))
    try:
        webhooks, workflows = await registry_admin.reannounce(pool, topics)
    finally:
        await pool.close()
    log.info("dev.registry_reannounced", webhooks=webhooks, workflows=workflows)
    return webhooks, workflows


def one_line(exc: BaseException) -> str:
    """`Type: message` on one line, for error messages (aiokafka's already name their type)."""
    name = type(exc).__name__
    text = " ".join(str(exc).split())
    return text if text.startswith(name) else f"{name}: {text}" if text else name
