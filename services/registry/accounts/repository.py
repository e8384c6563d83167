"""asyncpg SQL for accounts and API keys (registry schema)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from uuid import UUID

import asyncpg

from services.registry.accounts.models import ApiKey, ApiKeyRow
from services.registry.audit import repository as audit_log
from services.registry.audit.models import AuditEntry
from services.registry.errors import NotFound

# Never the digest: no read answers it.
_COLUMNS = (
    "id, account_id, role, label, token_prefix, created_at, expires_at, last_used_at, revoked_at"
)
_LIVE = "revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)"


def _key(record: asyncpg.Record) -> ApiKey:
    return ApiKey(**dict(record))


class AccountKeySql:
    """AccountKeyWrites on one connection, inside the transaction that locked the account."""

    def __init__(self, conn: asyncpg.Connection, account_id: UUID) -> None:
        self._conn = conn
        self._account_id = account_id

    async def live_keys(self, now: datetime) -> list[ApiKey]:
        records = await self._conn.fetch(
            f"SELECT {_COLUMNS} FROM registry.api_keys WHERE account_id = $1 AND {_LIVE}",
            self._account_id,
            now,
        )
        return [_key(r) for r in records]

    async def get(self, key_id: UUID) -> ApiKey | None:
        record = await self._conn.fetchrow(
            f"SELECT {_COLUMNS} FROM registry.api_keys WHERE account_id = $1 AND id = $2",
            self._account_id,
            key_id,
        )
        return _key(record) if record else None

    async def insert(self, key: ApiKeyRow) -> ApiKey:
        record = await self._conn.fetchrow(
            "INSERT INTO registry.api_keys (id, account_id, role, token_sha256, token_prefix,"
            " created_at, label, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            f" RETURNING {_COLUMNS}",
            key.id,
            self._account_id,
            key.role,
            key.token_sha256,
            key.token_prefix,
            key.created_at,
            key.label,
            key.expires_at,
        )
        return _key(record)

    async def revoke(self, key_id: UUID, now: datetime) -> ApiKey:
        record = await self._conn.fetchrow(
            "UPDATE registry.api_keys SET revoked_at = $3 WHERE account_id = $1 AND id = $2"
            f" RETURNING {_COLUMNS}",
            self._account_id,
            key_id,
            now,
        )
        return _key(record)

    async def audit(self, entry: AuditEntry) -> None:
        await audit_log.insert(self._conn, entry)


class PostgresAccounts:
    """AccountRepository on Postgres."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def insert_account(self, account_id: UUID, name: str) -> None:
        await self._pool.execute(
            "INSERT INTO registry.accounts (id, name) VALUES ($1, $2)", account_id, name
        )

    async def account_exists(self, account_id: UUID) -> bool:
        return bool(
            await self._pool.fetchval("SELECT 1 FROM registry.accounts WHERE id = $1", account_id)
        )

    @asynccontextmanager
    async def keys_of(self, account_id: UUID) -> AsyncIterator[AccountKeySql]:
        async with self._pool.acquire() as conn, conn.transaction():
            # The account's row is the lock every change of its keys takes, so two owners
            # revoking each other at once take turns and the second sees the first's revoke.
            # NO KEY UPDATE: the foreign keys' KEY SHARE locks of other writes do not wait.
            locked = await conn.fetchval(
                "SELECT 1 FROM registry.accounts WHERE id = $1 FOR NO KEY UPDATE", account_id
            )
            if locked is None:
                raise NotFound(str(account_id))
            yield AccountKeySql(conn, account_id)

    async def find_key(self, token_sha256: str, *, now: datetime) -> ApiKey | None:
        record = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM registry.api_keys WHERE token_sha256 = $1 AND {_LIVE}",
            token_sha256,
            now,
        )
        return _key(record) if record else None

    async def page_keys(
        self, account_id: UUID, *, limit: int, after: tuple[datetime, UUID] | None
    ) -> list[ApiKey]:
        records = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM registry.api_keys WHERE account_id = $1"
            " AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid))"
            " ORDER BY created_at DESC, id DESC LIMIT $4",
            account_id,
            after[0] if after else None,
            after[1] if after else None,
            limit,
        )
        return [_key(r) for r in records]

    async def record_use(self, used: Mapping[UUID, datetime]) -> None:
        # SKIP LOCKED: replicas writing the same keys at once never deadlock; a key skipped
        # is being written by another (about the same minute) or revoked.
        await self._pool.execute(
            "WITH due AS ("
            " SELECT k.id, u.at FROM registry.api_keys AS k"
            " JOIN unnest($1::uuid[], $2::timestamptz[]) AS u (id, at) ON k.id = u.id"
            " WHERE k.last_used_at IS NULL OR k.last_used_at < u.at"
            " FOR UPDATE OF k SKIP LOCKED)"
            " UPDATE registry.api_keys AS k SET last_used_at = due.at FROM due WHERE k.id = due.id",
            list(used),
            list(used.values()),
        )
