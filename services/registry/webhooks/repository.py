"""asyncpg SQL for webhooks (registry schema); every query but `all` is bounded to one account."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from services.registry import outbox
from services.registry.audit import repository as audit_log
from services.registry.audit.models import AuditEntry
from services.registry.outbox import OutboxEntry
from services.registry.quota import check_quota
from services.registry.webhooks.models import EndedOverlap, Webhook, WebhookRow
from services.registry.webhooks.records import ListedWebhook

_COLUMNS = (
    "id, organization_id, name, url, secret_ciphertext, events, room_id, enabled, disabled_reason,"
    " retry_schedule, revision, created_at, updated_at, previous_secret_ciphertext,"
    " previous_secret_until, headers_ciphertext, ordering, send_traceparent"
)


def _json(column: str) -> str:
    """SQL: `column`'s value as compact JSON text, as pydantic-core writes it (strings
    escaped alike, arrays without spaces; a test holds the bytes equal)."""
    return f"COALESCE(to_json({column})::text, 'null')"


def _json_moment(column: str) -> str:
    """SQL: a timestamptz as `format_timestamp` writes it (UTC, milliseconds cut, `Z`)."""
    return _json(f"""to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')""")


# The model's timestamps, each by the column it shows (formatted as `format_timestamp` does).
_MOMENTS = {
    "previous_secret_expires_at": "previous_secret_until",
    "created_at": "created_at",
    "updated_at": "updated_at",
}


def _members(fields: list[str]) -> str:
    """SQL: `"name":value,...` of the model's `fields`, each as JSON from its column."""
    values = [_json_moment(_MOMENTS[f]) if f in _MOMENTS else _json(f) for f in fields]
    return " || ',' || ".join(f"'\"{f}\":' || {v}" for f, v in zip(fields, values, strict=True))


# A page's webhooks as the API shows them (records.ListedWebhook): `Webhook`'s fields in its
# order, in two parts around `headers`.
_FIELDS = list(Webhook.model_fields)
_HEADERS_AT = _FIELDS.index("headers")
_LISTED = (
    "id, created_at, headers_ciphertext,"
    f" '{{' || {_members(_FIELDS[:_HEADERS_AT])},"
    f" {_members(_FIELDS[_HEADERS_AT + 1 :])} || '}}'"
)


def _row(record: asyncpg.Record) -> WebhookRow:
    # The record names every field (_COLUMNS is the dataclass's fields, a test holds them
    # equal), so its items fill the instance: a frozen dataclass's __init__ sets each of the
    # 18 through object.__setattr__, ~4.8 us a row against ~1 us (`all` reads every one).
    row = object.__new__(WebhookRow)
    row.__dict__.update(record.items())
    return row


class WebhookSql:
    """WebhookWrites on one connection, inside the caller's transaction."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def check_quota(self, organization_id: UUID, quota: int) -> None:
        await check_quota(self._conn, "webhooks", organization_id, quota)

    async def insert(self, row: WebhookRow) -> WebhookRow:
        record = await self._conn.fetchrow(
            f"INSERT INTO registry.webhooks ({_COLUMNS})"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,"
            " $18)"
            f" RETURNING {_COLUMNS}",
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
            row.previous_secret_ciphertext,
            row.previous_secret_until,
            row.headers_ciphertext,
            row.ordering,
            row.send_traceparent,
        )
        return _row(record)

    async def get(
        self, organization_id: UUID, webhook_id: UUID, *, for_update: bool = False
    ) -> WebhookRow | None:
        lock = " FOR UPDATE" if for_update else ""
        record = await self._conn.fetchrow(
            f"SELECT {_COLUMNS} FROM registry.webhooks"
            f" WHERE organization_id = $1 AND id = $2{lock}",
            organization_id,
            webhook_id,
        )
        return _row(record) if record else None

    async def get_for_update(self, organization_id: UUID, webhook_id: UUID) -> WebhookRow | None:
        return await self.get(organization_id, webhook_id, for_update=True)

    async def listing(
        self,
        organization_id: UUID,
        *,
        limit: int,
        after: tuple[datetime, UUID] | None,
        only: Collection[UUID] | None = None,
    ) -> list[ListedWebhook]:
        # A portal session's list has a statement of its own: an `$n IS NULL OR id = ANY($n)`
        # in the one every key's list runs turned its cached plan from the index's order to a
        # sort of the account's every webhook.
        scoped = "" if only is None else " AND id = ANY($5::uuid[])"
        args: list[object] = [
            organization_id,
            after[0] if after else None,
            after[1] if after else None,
            limit,
        ]
        if only is not None:
            args.append(list(only))
        records = await self._conn.fetch(
            f"SELECT {_LISTED} FROM registry.webhooks WHERE organization_id = $1"
            " AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid))"
            f"{scoped} ORDER BY created_at DESC, id DESC LIMIT $4",
            *args,
        )
        return [ListedWebhook(*r) for r in records]

    async def update(self, row: WebhookRow) -> WebhookRow:
        record = await self._conn.fetchrow(
            "UPDATE registry.webhooks SET name = $3, url = $4, events = $5, room_id = $6,"
            " enabled = $7, disabled_reason = $8, updated_at = $9, retry_schedule = $10,"
            " headers_ciphertext = $11, ordering = $12, send_traceparent = $13,"
            " revision = revision + 1"
            f" WHERE organization_id = $1 AND id = $2 RETURNING {_COLUMNS}",
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
            row.headers_ciphertext,
            row.ordering,
            row.send_traceparent,
        )
        return _row(record)

    async def replace_secret(self, row: WebhookRow) -> WebhookRow:
        record = await self._conn.fetchrow(
            "UPDATE registry.webhooks SET secret_ciphertext = $3,"
            " previous_secret_ciphertext = $4, previous_secret_until = $5, updated_at = $6,"
            " revision = revision + 1"
            f" WHERE organization_id = $1 AND id = $2 RETURNING {_COLUMNS}",
            row.organization_id,
            row.id,
            row.secret_ciphertext,
            row.previous_secret_ciphertext,
            row.previous_secret_until,
            row.updated_at,
        )
        return _row(record)

    async def delete(self, organization_id: UUID, webhook_id: UUID) -> WebhookRow | None:
        record = await self._conn.fetchrow(
            f"DELETE FROM registry.webhooks WHERE organization_id = $1 AND id = $2"
            f" RETURNING {_COLUMNS}",
            organization_id,
            webhook_id,
        )
        return _row(record) if record else None

    async def all(self) -> list[WebhookRow]:
        records = await self._conn.fetch(f"SELECT {_COLUMNS} FROM registry.webhooks ORDER BY id")
        return [_row(r) for r in records]

    async def enqueue(self, entries: Sequence[OutboxEntry]) -> None:
        await outbox.enqueue(self._conn, entries)

    async def audit(self, entry: AuditEntry) -> None:
        await audit_log.insert(self._conn, entry)


class PostgresWebhooks:
    """WebhookRepository on Postgres: reads on a pooled connection, writes in a transaction."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[WebhookSql]:
        async with self._pool.acquire() as conn, conn.transaction():
            yield WebhookSql(conn)

    async def get(self, organization_id: UUID, webhook_id: UUID) -> WebhookRow | None:
        async with self._pool.acquire() as conn:
            return await WebhookSql(conn).get(organization_id, webhook_id)

    async def listing(
        self,
        organization_id: UUID,
        *,
        limit: int,
        after: tuple[datetime, UUID] | None,
        only: Collection[UUID] | None = None,
    ) -> list[ListedWebhook]:
        async with self._pool.acquire() as conn:
            return await WebhookSql(conn).listing(
                organization_id, limit=limit, after=after, only=only
            )


# --- sealing stored secrets (start-up: sealing.py) -----------------------------------------


async def claim_legacy_secrets(conn: asyncpg.Connection, *, limit: int) -> list[tuple[UUID, str]]:
    """Rows still holding a plain secret (from before sealing), locked for the caller's
    transaction. SKIP LOCKED: registry replicas starting together share the work."""
    records = await conn.fetch(
        "SELECT id, legacy_secret FROM registry.webhooks WHERE legacy_secret IS NOT NULL"
        " ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        limit,
    )
    return [(r["id"], r["legacy_secret"]) for r in records]


@dataclass(frozen=True)
class SealedValues:
    """A webhook's sealed columns: its secret, a rotation's previous secret, its headers."""

    webhook_id: UUID
    secret: str | None
    previous_secret: str | None
    headers: str | None


def _key_of(column: str) -> str:
    return f"split_part({column}, ':', 1)"


_SEALED = ("secret_ciphertext", "previous_secret_ciphertext", "headers_ciphertext")


async def claim_sealed_under(
    conn: asyncpg.Connection, key_ids: Sequence[str], *, limit: int
) -> list[SealedValues]:
    """Rows with a value sealed under one of `key_ids`, locked for the caller's transaction."""
    under = " OR ".join(f"{_key_of(c)} = ANY($1::text[])" for c in _SEALED)
    records = await conn.fetch(
        f"SELECT id, {', '.join(_SEALED)} FROM registry.webhooks WHERE {under}"
        " ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
        list(key_ids),
        limit,
    )
    return [SealedValues(*r.values()) for r in records]


async def store_sealed(conn: asyncpg.Connection, sealed: Sequence[tuple[UUID, str]]) -> None:
    """Write sealed secrets and clear any plain one; the webhook's revision is unchanged
    (its secret is the same)."""
    await conn.executemany(
        "UPDATE registry.webhooks SET secret_ciphertext = $2, legacy_secret = NULL WHERE id = $1",
        sealed,
    )


async def store_resealed(conn: asyncpg.Connection, rows: Sequence[SealedValues]) -> None:
    """Write every sealed column again (the same values, under another key); the revision is
    unchanged."""
    await conn.executemany(
        "UPDATE registry.webhooks SET secret_ciphertext = $2, previous_secret_ciphertext = $3,"
        " headers_ciphertext = $4 WHERE id = $1",
        [(r.webhook_id, r.secret, r.previous_secret, r.headers) for r in rows],
    )


async def count_sealed_outside(conn: asyncpg.Connection, key_ids: Sequence[str]) -> int:
    """Rows with a value sealed under a key not in `key_ids` (nobody here can open it)."""
    outside = " OR ".join(f"{_key_of(c)} <> ALL($1::text[])" for c in _SEALED)
    return int(
        await conn.fetchval(
            f"SELECT count(*) FROM registry.webhooks WHERE {outside}", list(key_ids)
        )
    )


# --- ending rotations' overlaps (secret_overlaps.py) ---------------------------------------

# SKIP LOCKED: N replicas sweeping at once never clear (nor audit) the same webhook twice; a
# webhook a rotation holds is left for the next pass. The outer condition is the decision:
# only a row whose overlap is still ended when claimed is cleared. The subquery's ORDER BY
# and LIMIT walk the partial index on previous_secret_until (migration 0010).
_END_OVERLAPS = """
WITH due AS (
    SELECT id, previous_secret_until FROM registry.webhooks
    WHERE previous_secret_until <= $1
    ORDER BY previous_secret_until
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE registry.webhooks w
SET previous_secret_ciphertext = NULL, previous_secret_until = NULL
FROM due
WHERE w.id = due.id AND w.previous_secret_until <= $1
RETURNING w.id AS webhook_id, w.organization_id, due.previous_secret_until AS ended_at
"""


class OverlapSql:
    """OverlapWrites on one connection, inside the caller's transaction."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def end_overlaps(self, *, now: datetime, limit: int) -> list[EndedOverlap]:
        records = await self._conn.fetch(_END_OVERLAPS, now, limit)
        return sorted((EndedOverlap(**dict(r)) for r in records), key=lambda e: e.ended_at)

    async def audit(self, entry: AuditEntry) -> None:
        await audit_log.insert(self._conn, entry)


class PostgresEndedOverlaps:
    """EndedOverlaps on Postgres: each transaction on a pooled connection of its own."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[OverlapSql]:
        async with self._pool.acquire() as conn, conn.transaction():
            yield OverlapSql(conn)
