"""asyncpg SQL for the audit log (registry schema): `insert` runs inside the transaction of
the change it records; reads are bounded to one account."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

from services.registry.audit.models import Actor, AuditEntry

_COLUMNS = (
    "id, account_id, created_at, actor, key_id, key_label, role, action, target_id, changes,"
    " portal_session_id"
)


async def insert(conn: asyncpg.Connection, entry: AuditEntry) -> None:
    """Write the entry in the caller's transaction: kept iff the change is."""
    actor = entry.actor
    await conn.execute(
        f"INSERT INTO registry.audit_log ({_COLUMNS})"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        entry.id,
        entry.account_id,
        entry.created_at,
        actor.kind,
        actor.key_id,
        actor.label,
        actor.role,
        entry.action,
        entry.target_id,
        entry.changes,  # the pool's codec writes it as JSON (shared/db.py)
        actor.session_id,
    )


def _entry(record: asyncpg.Record) -> AuditEntry:
    actor = Actor(
        record["actor"],
        str(record["account_id"]),
        record["key_id"],
        record["key_label"],
        record["role"],
        record["portal_session_id"],
    )
    return AuditEntry(
        id=record["id"],
        account_id=record["account_id"],
        created_at=record["created_at"],
        actor=actor,
        action=record["action"],
        target_id=record["target_id"],
        changes=record["changes"],
    )


class PostgresAuditLog:
    """AuditLog on Postgres."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def page(
        self,
        account_id: UUID,
        *,
        since: datetime | None,
        limit: int,
        after: tuple[datetime, UUID] | None,
    ) -> list[AuditEntry]:
        records = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM registry.audit_log WHERE account_id = $1"
            " AND ($2::timestamptz IS NULL OR created_at >= $2)"
            " AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid))"
            " ORDER BY created_at DESC, id DESC LIMIT $5",
            account_id,
            since,
            after[0] if after else None,
            after[1] if after else None,
            limit,
        )
        return [_entry(r) for r in records]
