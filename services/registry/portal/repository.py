"""asyncpg SQL for portal sessions (registry schema). A session is found by a digest only;
every other read or write names its account or its id."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import asyncpg

from services.registry.audit import repository as audit_log
from services.registry.audit.models import AuditEntry
from services.registry.portal.models import PortalSession, PortalSessionRow

_SESSION = "id, account_id, webhook_ids, read_only, expires_at, created_by"


def _session(record: asyncpg.Record) -> PortalSession:
    ids = record["webhook_ids"]
    return PortalSession(
        id=record["id"],
        account_id=record["account_id"],
        webhook_ids=None if ids is None else frozenset(ids),
        read_only=record["read_only"],
        expires_at=record["expires_at"],
        created_by=record["created_by"],
    )


class PostgresPortalSessions:
    """PortalSessions on Postgres."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def owned_webhooks(self, account_id: UUID, ids: Sequence[UUID]) -> set[UUID]:
        records = await self._pool.fetch(
            "SELECT id FROM registry.webhooks WHERE organization_id = $1 AND id = ANY($2::uuid[])",
            account_id,
            list(ids),
        )
        return {r["id"] for r in records}

    async def insert(self, row: PortalSessionRow, audit: AuditEntry) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO registry.portal_sessions (id, account_id, webhook_ids, read_only,"
                " link_hash, expires_at, created_at, created_by)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                row.id,
                row.account_id,
                None if row.webhook_ids is None else list(row.webhook_ids),
                row.read_only,
                row.link_hash,
                row.expires_at,
                row.created_at,
                row.created_by,
            )
            await audit_log.insert(conn, audit)

    async def exchange(
        self, link_hash: str, session_hash: str, *, now: datetime
    ) -> PortalSession | str:
        # One statement: of two exchanges of the same link at once, one finds it unused.
        record = await self._pool.fetchrow(
            "UPDATE registry.portal_sessions SET link_used_at = $2, session_hash = $3"
            " WHERE link_hash = $1 AND link_used_at IS NULL AND expires_at > $2"
            f" RETURNING {_SESSION}",
            link_hash,
            now,
            session_hash,
        )
        if record is not None:
            return _session(record)
        found = await self._pool.fetchrow(
            "SELECT link_used_at FROM registry.portal_sessions WHERE link_hash = $1", link_hash
        )
        if found is None:
            return "unknown"
        return "used" if found["link_used_at"] is not None else "expired"

    async def find(self, session_hash: str) -> PortalSession | None:
        record = await self._pool.fetchrow(
            f"SELECT {_SESSION} FROM registry.portal_sessions WHERE session_hash = $1",
            session_hash,
        )
        return _session(record) if record else None

    async def add_webhook(self, session_id: UUID, webhook_id: UUID) -> None:
        await self._pool.execute(
            "UPDATE registry.portal_sessions SET webhook_ids = array_append(webhook_ids, $2)"
            " WHERE id = $1 AND webhook_ids IS NOT NULL AND NOT ($2 = ANY(webhook_ids))",
            session_id,
            webhook_id,
        )
