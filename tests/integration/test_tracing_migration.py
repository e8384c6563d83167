"""The trace context stored with a delivery: the migration adds `traceparent` to a deliveries
table already partitioned by day (every day has it, those made later too; rows from before
read NULL), and a stored context comes back with the delivery when it is claimed again,
ordered deliveries included."""

from __future__ import annotations

import uuid
from datetime import timedelta

import asyncpg
import pytest

from services.delivery import repository
from services.delivery.ordering import insert_ordered
from services.delivery.retention import DELIVERIES
from shared.db import migration_files, with_database
from shared.messages import EventPosition
from shared.partitions import create_partitions, day_start, partition_name
from tests.integration.test_delivery_retention import OLD, YOUNG, request

pytestmark = pytest.mark.integration

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
ORDERED_TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def test_the_migration_adds_the_column_to_every_day_and_claims_return_the_context(
    postgres_url,
):
    name = f"rh_migrate_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(with_database(postgres_url, "postgres"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    conn = await asyncpg.connect(with_database(postgres_url, name))
    try:
        files = migration_files("services.delivery")
        await conn.execute("CREATE SCHEMA delivery; SET search_path TO delivery, public")
        [adding] = [sql for version, sql in files if version.startswith("0007")]
        for version, sql in files:
            if version < "0007":
                await conn.execute(sql)
        await create_partitions(conn, DELIVERIES, today=OLD, ahead=0)
        webhook, org = uuid.uuid4(), uuid.uuid4()
        before = request(webhook, org, "before", day_start(OLD))
        await conn.execute(
            "INSERT INTO delivery.deliveries (id, webhook_id, organization_id, event_id, event,"
            " payload, status, attempts, next_attempt_at, created_at, updated_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7, $7)",
            uuid.UUID(before.delivery_id), webhook, org, before.event_id, before.event,
            before.body, before.created_at,
        )  # fmt: skip

        await conn.execute(adding)

        await create_partitions(conn, DELIVERIES, today=YOUNG, ahead=0)
        made = day_start(YOUNG) + timedelta(hours=9)
        traced = request(webhook, org, "traced", made)
        untraced = request(webhook, org, "untraced", made)
        ordered = request(webhook, org, "ordered", made).model_copy(
            update={"room_id": "room-1", "ordering": "room",
                    "position": EventPosition(partition=0, offset=7)}
        )  # fmt: skip
        traces = {traced.delivery_id: TRACEPARENT, ordered.delivery_id: ORDERED_TRACE}
        async with conn.transaction():
            await repository.insert_requested(
                conn, [traced, untraced], now=made, lease_until=made, traces=traces
            )
            started = await insert_ordered(conn, [ordered], now=made, lease_until=made,
                                           traces=traces)  # fmt: skip
        assert [job.traceparent for job in await repository.load_jobs(conn, started)] == [
            ORDERED_TRACE
        ]
        later = made + timedelta(hours=1)
        claimed = await repository.claim_due(
            conn, now=later, lease_until=later + timedelta(minutes=1), limit=10
        )
        having = await conn.fetch(
            "SELECT c.relname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
            " WHERE a.attname = 'traceparent' AND NOT a.attisdropped"
        )
    finally:
        await conn.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    assert {
        "deliveries",
        "deliveries_default",
        partition_name("deliveries", OLD),
        partition_name("deliveries", YOUNG),
    } <= {r["relname"] for r in having}
    by_event = {job.event_id: job.traceparent for job in claimed}
    assert by_event == {
        "before": None,  # stored before the migration
        "traced": TRACEPARENT,
        "untraced": None,  # stored with tracing off
        "ordered": ORDERED_TRACE,
    }
