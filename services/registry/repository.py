"""asyncpg SQL for the registry schema; every webhook query is bounded to one account."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

OUTBOX_CHANNEL = "roomhooks_registry_outbox"

_WEBHOOK_COLUMNS = (
    "id, organization_id, name, url, secret_ciphertext, events, room_id, enabled, disabled_reason,"
    " retry_schedule, revision, created_at, updated_at"
)


@dataclass(frozen=True)
class WebhookRow:
    id: UUID
    organization_id: UUID
    name: str | None
    url: str
    # `<key id>:<Fernet token>` (shared/secrets_box.py); None only on a row written before
    # secrets were sealed, until the registry's start-up seals it.
    secret_ciphertext: str | None
    events: list[str]
    room_id: str | None
    enabled: bool
    disabled_reason: str | None
    retry_schedule: list[int] | None
    revision: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_record(cls, record: asyncpg.Record) -> WebhookRow:
        return cls(**dict(record))


@dataclass(frozen=True)
class KeyOwner:
    account_id: UUID
    role: str


@dataclass(frozen=True)
class OutboxMessage:
    id: int
    topic: str
    key: bytes
    value: bytes | None


# --- accounts and keys ------------------------------------------------------------------


async def count_owned(conn: asyncpg.Connection, table: str, organization_id: UUID) -> int:
    """Rows of `table` (webhooks or workflows) the account holds."""
    if table not in ("webhooks", "workflows"):
        raise ValueError(f"no quota on {table}")
    return await conn.fetchval(
        f"SELECT count(*) FROM registry.{table} WHERE organization_id = $1",
        organization_id,
    )


async def lock_account(conn: asyncpg.Connection, organization_id: UUID) -> None:
    """Hold the account row until the transaction ends, so creates in it take turns.
    (NO KEY UPDATE: the foreign keys' KEY SHARE locks of other writes do not wait for it.)"""
    await conn.execute(
        "SELECT 1 FROM registry.accounts WHERE id = $1 FOR NO KEY UPDATE", organization_id
    )


async def insert_account(conn: asyncpg.Connection, *, account_id: UUID, name: str) -> None:
    await conn.execute("INSERT INTO registry.accounts (id, name) VALUES ($1, $2)", account_id, name)


async def account_exists(conn: asyncpg.Connection, account_id: UUID) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM registry.accounts WHERE id = $1", account_id))


async def insert_api_key(
    conn: asyncpg.Connection,
    *,
    key_id: UUID,
    account_id: UUID,
    role: str,
    token_sha256: str,
    token_prefix: str,
) -> None:
    await conn.execute(
        "INSERT INTO registry.api_keys (id, account_id, role, token_sha256, token_prefix)"
        " VALUES ($1, $2, $3, $4, $5)",
        key_id,
        account_id,
        role,
        token_sha256,
        token_prefix,
    )


async def find_key_owner(conn: asyncpg.Connection, token_sha256: str) -> KeyOwner | None:
    row = await conn.fetchrow(
        "SELECT account_id, role FROM registry.api_keys"
        " WHERE token_sha256 = $1 AND revoked_at IS NULL",
        token_sha256,
    )
    return KeyOwner(row["account_id"], row["role"]) if row else None


# --- webhooks -----------------------------------------------------------------------------


async def insert_webhook(conn: asyncpg.Connection, row: WebhookRow) -> WebhookRow:
    record = await conn.fetchrow(
        f"INSERT INTO registry.webhooks ({_WEBHOOK_COLUMNS})"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        f" RETURNING {_WEBHOOK_COLUMNS}",
        row.id,
        row.organization_id,
        row.name,
        row.url,
        row.secret_ciphertext,
        row.events,
        row.room_id,
        row.enabled,
        row.disabled_reason,
        row.retry_schedule,
        row.revision,
        row.created_at,
        row.updated_at,
    )
    return WebhookRow.from_record(record)


async def get_webhook(
    conn: asyncpg.Connection, *, organization_id: UUID, webhook_id: UUID, for_update: bool = False
) -> WebhookRow | None:
    lock = " FOR UPDATE" if for_update else ""
    record = await conn.fetchrow(
        f"SELECT {_WEBHOOK_COLUMNS} FROM registry.webhooks"
        f" WHERE organization_id = $1 AND id = $2{lock}",
        organization_id,
        webhook_id,
    )
    return WebhookRow.from_record(record) if record else None


async def list_webhooks(
    conn: asyncpg.Connection,
    *,
    organization_id: UUID,
    limit: int,
    after: tuple[datetime, UUID] | None,
) -> list[WebhookRow]:
    records = await conn.fetch(
        f"SELECT {_WEBHOOK_COLUMNS} FROM registry.webhooks WHERE organization_id = $1"
        " AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid))"
        " ORDER BY created_at DESC, id DESC LIMIT $4",
        organization_id,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return [WebhookRow.from_record(r) for r in records]


async def update_webhook(conn: asyncpg.Connection, row: WebhookRow) -> WebhookRow:
    """Write the changeable fields; bumps the revision."""
    record = await conn.fetchrow(
        "UPDATE registry.webhooks SET name = $3, url = $4, events = $5, room_id = $6,"
        " enabled = $7, disabled_reason = $8, updated_at = $9, retry_schedule = $10,"
        " revision = revision + 1"
        f" WHERE organization_id = $1 AND id = $2 RETURNING {_WEBHOOK_COLUMNS}",
        row.organization_id,
        row.id,
        row.name,
        row.url,
        row.events,
        row.room_id,
        row.enabled,
        row.disabled_reason,
        row.updated_at,
        row.retry_schedule,
    )
    return WebhookRow.from_record(record)


async def delete_webhook(
    conn: asyncpg.Connection, *, organization_id: UUID, webhook_id: UUID
) -> WebhookRow | None:
    record = await conn.fetchrow(
        "DELETE FROM registry.webhooks WHERE organization_id = $1 AND id = $2"
        f" RETURNING {_WEBHOOK_COLUMNS}",
        organization_id,
        webhook_id,
    )
    return WebhookRow.from_record(record) if record else None


async def all_webhooks(conn: asyncpg.Connection) -> list[WebhookRow]:
    """Every account's webhooks: only for re-announcing them all to the registry topic."""
    records = await conn.fetch(f"SELECT {_WEBHOOK_COLUMNS} FROM registry.webhooks ORDER BY id")
    return [WebhookRow.from_record(r) for r in records]


# --- sealing stored secrets (start-up) ------------------------------------------------------


async def claim_legacy_secrets(conn: asyncpg.Connection, *, limit: int) -> list[tuple[UUID, str]]:
    """Rows still holding a plain secret (from before sealing), locked for the caller's
    transaction. SKIP LOCKED: registry replicas starting together share the work."""
    records = await conn.fetch(
        "SELECT id, legacy_secret FROM registry.webhooks WHERE legacy_secret IS NOT NULL"
        " ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        limit,
    )
    return [(r["id"], r["legacy_secret"]) for r in records]


async def claim_sealed_under(
    conn: asyncpg.Connection, key_ids: Sequence[str], *, limit: int
) -> list[tuple[UUID, str]]:
    """Rows sealed under one of `key_ids`, locked for the caller's transaction."""
    records = await conn.fetch(
        "SELECT id, secret_ciphertext FROM registry.webhooks"
        " WHERE split_part(secret_ciphertext, ':', 1) = ANY($1::text[])"
        " ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
        list(key_ids),
        limit,
    )
    return [(r["id"], r["secret_ciphertext"]) for r in records]


async def store_sealed(conn: asyncpg.Connection, sealed: Sequence[tuple[UUID, str]]) -> None:
    """Write sealed secrets and clear any plain one; the webhook's revision is unchanged
    (its secret is the same)."""
    await conn.executemany(
        "UPDATE registry.webhooks SET secret_ciphertext = $2, legacy_secret = NULL WHERE id = $1",
        sealed,
    )


async def count_sealed_outside(conn: asyncpg.Connection, key_ids: Sequence[str]) -> int:
    """Rows sealed under a key not in `key_ids` (nobody here can open them)."""
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM registry.webhooks WHERE secret_ciphertext IS NOT NULL"
            " AND split_part(secret_ciphertext, ':', 1) <> ALL($1::text[])",
            list(key_ids),
        )
    )


# --- outbox -------------------------------------------------------------------------------


async def enqueue(
    conn: asyncpg.Connection, messages: Sequence[tuple[str, bytes, bytes | None]]
) -> None:
    """Add (topic, key, value) rows in the caller's transaction and wake the relay on commit."""
    await conn.executemany(
        "INSERT INTO registry.outbox (topic, key, value) VALUES ($1, $2, $3)", messages
    )
    # NOTIFY is delivered at commit, never for a rolled-back change.
    await conn.execute(f"NOTIFY {OUTBOX_CHANNEL}")


async def claim_outbox(conn: asyncpg.Connection, *, limit: int) -> list[OutboxMessage]:
    """Oldest first. Call inside a transaction holding the relay lock."""
    records = await conn.fetch(
        "SELECT id, topic, key, value FROM registry.outbox ORDER BY id LIMIT $1", limit
    )
    return [OutboxMessage(r["id"], r["topic"], r["key"], r["value"]) for r in records]


async def delete_outbox(conn: asyncpg.Connection, ids: Sequence[int]) -> None:
    await conn.execute("DELETE FROM registry.outbox WHERE id = ANY($1::bigint[])", list(ids))


async def outbox_backlog(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM registry.outbox"))


async def ping(conn: asyncpg.Connection) -> Any:
    return await conn.fetchval("SELECT 1")
