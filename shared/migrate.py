"""The migrate step, `python -m services.<name> migrate`: run as the owner role before the
services start (a compose one-shot job, a Kubernetes Job). It applies the schema's pending
migrations, then makes the services' roles and this schema's grants what
shared/db_roles.py says, all under the migration lock; running it again changes nothing.
"""

from __future__ import annotations

import asyncio

import asyncpg
import structlog

from shared.db import SchemaNotReady, apply_migrations, migration_lock
from shared.db_roles import SCHEMA_ACCESS, grant_schema_access
from shared.retention import RetentionPlan, prepare_partitions
from shared.settings import PostgresSettings

log = structlog.get_logger(__name__)


async def migrate(
    settings: PostgresSettings, *, schema: str, package: str, plan: RetentionPlan | None = None
) -> list[str]:
    """Apply `schema`'s pending migrations, the day partitions of `plan`'s tables, and the
    schema's grants; returns the versions applied now."""
    schemas = {entry.schema for entry in SCHEMA_ACCESS}
    unknown = sorted(set(settings.role_passwords) - schemas)
    if unknown:
        raise ValueError(
            f"ROOMHOOKS_PG_ROLE_PASSWORDS names no schema: {', '.join(unknown)} "
            f"(the schemas: {', '.join(sorted(schemas))})"
        )
    conn = await asyncpg.connect(settings.url)
    try:
        async with migration_lock(conn):
            applied = await apply_migrations(conn, schema=schema, package=package)
            if plan is not None:
                await prepare_partitions(conn, plan)
            await grant_schema_access(
                conn, schema, prefix=settings.role_prefix, passwords=settings.role_passwords
            )
    finally:
        await conn.close()
    log.info("db.migrated", schema=schema, applied=applied, role_prefix=settings.role_prefix)
    return applied


def migrate_main(
    settings: PostgresSettings, *, schema: str, package: str, plan: RetentionPlan | None = None
) -> int:
    """The command's exit status: 0 once the schema is migrated and granted, else 1 with the
    reason logged (a Job or compose dependency then stops the rollout)."""
    try:
        asyncio.run(migrate(settings, schema=schema, package=package, plan=plan))
    except (
        OSError,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        ValueError,
        SchemaNotReady,
    ) as exc:
        log.critical("db.migrate_failed", schema=schema, error=f"{type(exc).__name__}: {exc}")
        return 1
    return 0
