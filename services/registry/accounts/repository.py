"""asyncpg SQL for accounts and API keys (registry schema)."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from services.registry.accounts.service import ApiKeyRow, KeyOwner


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

    async def insert_key(self, key: ApiKeyRow) -> None:
        await self._pool.execute(
            "INSERT INTO registry.api_keys (id, account_id, role, token_sha256, token_prefix)"
            " VALUES ($1, $2, $3, $4, $5)",
            key.id,
            key.account_id,
            key.role,
            key.token_sha256,
            key.token_prefix,
        )

    async def find_key_owner(self, token_sha256: str) -> KeyOwner | None:
        row = await self._pool.fetchrow(
            "SELECT account_id, role FROM registry.api_keys"
            " WHERE token_sha256 = $1 AND revoked_at IS NULL",
            token_sha256,
        )
        return KeyOwner(row["account_id"], row["role"]) if row else None
