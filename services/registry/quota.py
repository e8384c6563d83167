"""The per-account quota on webhooks and workflows, as both Postgres repositories hold it."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from services.registry.errors import QuotaExceeded

# Creates far from the quota take no lock (they would queue behind each other, 2-3 times
# fewer per second with 8 at once); within this many of it, each counts under the account's
# row lock. Exact unless more creates than this are in flight for one account at once, more
# than the connection pools of several replicas (ROOMHOOKS_PG_POOL_MAX_SIZE each) hold.
QUOTA_UNLOCKED_MARGIN = 64


async def check_quota(
    conn: asyncpg.Connection, table: str, organization_id: UUID, quota: int
) -> None:
    """Raise QuotaExceeded when the account holds `quota` rows of `table`; call inside the
    transaction that inserts one more."""
    held = await _count_owned(conn, table, organization_id)
    if held + QUOTA_UNLOCKED_MARGIN >= quota:
        # NO KEY UPDATE: the foreign keys' KEY SHARE locks of other writes do not wait for it.
        await conn.execute(
            "SELECT 1 FROM registry.accounts WHERE id = $1 FOR NO KEY UPDATE", organization_id
        )
        held = await _count_owned(conn, table, organization_id)
    if held >= quota:
        raise QuotaExceeded(table, quota)


async def _count_owned(conn: asyncpg.Connection, table: str, organization_id: UUID) -> int:
    if table not in ("webhooks", "workflows"):
        raise ValueError(f"no quota on {table}")
    return await conn.fetchval(
        f"SELECT count(*) FROM registry.{table} WHERE organization_id = $1",
        organization_id,
    )
