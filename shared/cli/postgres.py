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
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import structlog

from services.registry import repository as registry_repository
from services.registry.code_check import deno_code_check
from services.registry.policy import Role
from services.registry.records import registry_entry
from services.registry.repository import KeyOwner
from services.registry.service import AccountService
from services.registry.workflows import WorkflowService
from shared.db import (
    apply_migrations,
    create_pool,
    database_name,
    ensure_database,
    service_schema,
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


@dataclass(frozen=True)
class DevAccount:
    account_id: str
    owner_token: str
    member_token: str


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


async def migrate_all(url: str, schemas: list[str]) -> None:
    """Apply every service's pending migrations (`services/<name>/migrations`)."""
    conn = await asyncpg.connect(url)
    try:
        for schema in schemas:
            await apply_migrations(
                conn, schema=service_schema(schema), package=f"services.{schema}"
            )
    finally:
        await conn.close()


# --- the development account ---------------------------------------------------------------


def keys_still_valid(account_id: str, owner: KeyOwner | None, member: KeyOwner | None) -> bool:
    """Both keys authenticate, belong to `account_id`, and carry OWNER and MEMBER."""
    try:
        wanted = UUID(account_id)
    except ValueError:
        return False
    return (
        owner is not None
        and member is not None
        and owner.account_id == wanted == member.account_id
        and owner.role == Role.OWNER.value
        and member.role == Role.MEMBER.value
    )


async def dev_account(url: str, previous: Mapping[str, str]) -> tuple[DevAccount, bool]:
    """The account and keys of the previous run.env when still valid here, else new ones.

    Returns (account, reused).
    """
    pool = await create_pool(PostgresSettings(url=url, pool_min_size=1, pool_max_size=2))
    try:
        accounts = AccountService(pool)
        old = DevAccount(
            previous.get("ROOMHOOKS_ACCOUNT_ID", ""),
            previous.get("ROOMHOOKS_OWNER_TOKEN", ""),
            previous.get("ROOMHOOKS_MEMBER_TOKEN", ""),
        )
        if old.owner_token and old.member_token:
            owner = await accounts.authenticate(old.owner_token)
            member = await accounts.authenticate(old.member_token)
            if keys_still_valid(old.account_id, owner, member):
                return old, True
        account_id = await accounts.create_account(DEV_ACCOUNT_NAME)
        owner_token = await accounts.create_key(account_id, Role.OWNER)
        member_token = await accounts.create_key(account_id, Role.MEMBER)
        return DevAccount(str(account_id), owner_token, member_token), False
    finally:
        await pool.close()


async def reannounce_registry(url: str, topics: Topics) -> tuple[int, int]:
    """Announce every webhook and workflow again, through the registry's outbox (the registry's
    relay publishes them): a restarted dev broker has forgotten `roomhooks.registry`, and a
    fanout that starts after that must still find every subscription. Real Kafka keeps the
    compacted topic, so production needs none of this. Returns (webhooks, workflows)."""
    pool = await create_pool(PostgresSettings(url=url, pool_min_size=1, pool_max_size=2))
    try:
        # The webhooks' public records only (what WebhookService.republish_all enqueues; that
        # service also holds the secrets box, which re-announcing has no use for).
        async with pool.acquire() as conn, conn.transaction():
            rows = await registry_repository.all_webhooks(conn)
            if rows:
                await registry_repository.enqueue(conn, [registry_entry(topics, r) for r in rows])
        webhooks = len(rows)
        workflows = await WorkflowService(pool, topics, _utcnow, deno_code_check).republish_all()
    finally:
        await pool.close()
    log.info("dev.registry_reannounced", webhooks=webhooks, workflows=workflows)
    return webhooks, workflows


def _utcnow() -> datetime:
    return datetime.now(UTC)


def one_line(exc: BaseException) -> str:
    """`Type: message` on one line, for error messages (aiokafka's already name their type)."""
    name = type(exc).__name__
    text = " ".join(str(exc).split())
    return text if text.startswith(name) else f"{name}: {text}" if text else name
