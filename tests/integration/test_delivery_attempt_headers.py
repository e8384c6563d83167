"""The request headers of each attempt, as sent, in the registry's delivery detail: delivery
records them on the attempt row with the signatures and the webhook's own header values masked;
attempts recorded before show null. Migration 0005 adds the column to a delivery_attempts
already partitioned by day, and retention still drops a day of attempts whole."""

from __future__ import annotations

import dataclasses
import uuid

import asyncpg
import pytest

from services.delivery import repository
from services.delivery.retention import ATTEMPTS, DELIVERIES, PLAN
from services.registry.policy import Role
from shared.db import migration_files, with_database
from shared.partitions import create_partitions, day_start, partition_name
from shared.retention import run_retention
from tests.integration import test_delivery_service
from tests.integration.test_delivery_retention import (
    NOW,
    OLD,
    RETENTION_DAYS,
    YOUNG,
    attempt,
    attempted_twice,
    request,
)
from tests.integration.test_delivery_service import Harness
from tests.support.receiver import Script

pytestmark = pytest.mark.integration

# The delivery service in-process beside the registry, as test_delivery_service.py runs them.
delivery = test_delivery_service.delivery
harness = test_delivery_service.harness

CUSTOM = {"Authorization": "Bearer tok-7f3a9c", "X-Team": "blue-team-42"}


async def test_each_attempt_shows_the_headers_it_was_sent_with_secrets_masked(
    harness: Harness, delivery
):
    webhook = await harness.webhook("/flaky", Script(statuses=[503, 200]), headers=CUSTOM)
    message = await harness.request(webhook)
    row = await harness.final(message.delivery_id)
    assert row["status"] == "success" and row["attempts"] == 2

    received = harness.receiver.received["/flaky"]
    data = await harness.api_delivery(webhook, message.delivery_id)
    assert [a["attempt"] for a in data["attempts"]] == [1, 2]
    for got, shown in zip(received, data["attempts"], strict=True):
        headers = shown["request_headers"]
        assert headers["webhook-signature"] == "v1,****"
        assert headers["X-Webhook-Signature"] == "****"
        assert headers["Authorization"] == headers["X-Team"] == "****"
        masked = {"webhook-signature", "X-Webhook-Signature", *CUSTOM}
        for name, value in headers.items():
            if name not in masked:
                assert got.headers[name] == value, name  # the rest exactly as received
        assert headers["X-Webhook-Attempt"] == str(shown["attempt"])
        assert headers["webhook-id"] == message.delivery_id
    text = str(data)
    for secret in (webhook["secret"], *CUSTOM.values()):
        assert secret not in text
    for got in received:
        assert got.headers["webhook-signature"].split(",")[1] not in text
        assert got.headers["X-Webhook-Signature"] not in text


async def test_during_a_rotation_each_signature_keeps_only_its_scheme(harness: Harness, delivery):
    r = harness.registry
    webhook = await harness.webhook("/rotated")
    url = r.webhooks_url(r.alice, webhook["id"]) + "/rotate-secret"
    resp = await r.http.post(url, json={"overlapSeconds": 3600}, headers=r.alice.auth())
    assert resp.status == 200, await resp.text()
    message = await harness.request(webhook)
    await harness.final(message.delivery_id)

    [got] = harness.receiver.received["/rotated"]
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    data = await harness.api_delivery(webhook, message.delivery_id)
    headers = data["attempts"][0]["request_headers"]
    assert headers["webhook-signature"] == "v1,**** v1,****"
    assert headers["X-Webhook-Signature"] == headers["X-Webhook-Signature-Next"] == "****"


async def test_a_member_key_reads_them_and_an_attempt_recorded_before_shows_null(
    harness: Harness, pool
):
    webhook = await harness.webhook("/old")
    message = await harness.request(webhook)
    # As the delivery service stored it before it recorded headers: request, then attempt.
    created = message.created_at
    async with pool.acquire() as conn:
        [job] = await repository.insert_requested(conn, [message], now=created, lease_until=created)
        older = attempt(job, 1, "success", created)
        assert older.request_headers is None
        assert await repository.record_attempts(conn, [older], now=created) == 1
    r = harness.registry
    url = r.webhooks_url(r.alice, webhook["id"]) + f"/deliveries/{message.delivery_id}"
    resp = await r.http.get(url, headers=r.alice.auth(Role.MEMBER))
    assert resp.status == 200
    [shown] = (await resp.json())["data"]["attempts"]
    assert shown["request_headers"] is None


async def attempted_before(conn, webhook: uuid.UUID, org: uuid.UUID) -> list[uuid.UUID]:
    """Two deliveries on OLD, each with an attempt, as recorded before migration 0005."""
    made = day_start(OLD)
    requests = [request(webhook, org, f"before-{n}", made) for n in range(2)]
    # Written as that schema takes them: today's statements need the later migrations' columns.
    await conn.executemany(
        "INSERT INTO delivery.deliveries (id, webhook_id, organization_id, event_id, event,"
        " payload, status, attempts, created_at, updated_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, 'success', 1, $7, $7)",
        [
            (uuid.UUID(r.delivery_id), webhook, org, r.event_id, r.event, r.body, made)
            for r in requests
        ],
    )
    await conn.executemany(
        "INSERT INTO delivery.delivery_attempts (delivery_id, delivery_created_at, attempt,"
        " started_at, duration_ms) VALUES ($1, $2, 1, $2, 5)",
        [(uuid.UUID(r.delivery_id), made) for r in requests],
    )
    return [uuid.UUID(r.delivery_id) for r in requests]


async def test_the_migration_adds_the_column_to_every_day_and_retention_still_drops_one(
    postgres_url,
):
    name = f"rh_migrate_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(with_database(postgres_url, "postgres"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    conn = await asyncpg.connect(with_database(postgres_url, name))
    try:
        files = migration_files("services.delivery")
        await conn.execute("CREATE SCHEMA delivery; SET search_path TO delivery, public")
        [(_, adding)] = [(v, sql) for v, sql in files if v.startswith("0005")]
        for version, sql in files:
            if version < "0005":
                await conn.execute(sql)
        for table in (DELIVERIES, ATTEMPTS):
            await create_partitions(conn, table, today=OLD, ahead=0)
        webhook, org = uuid.uuid4(), uuid.uuid4()
        old = await attempted_before(conn, webhook, org)

        await conn.execute(adding)
        # The code below is today's, which needs the migrations after this one as well.
        for version, sql in files:
            if version[:4] > "0005":
                await conn.execute(sql)

        # A day made after the migration has the column as well, as does the default.
        for table in (DELIVERIES, ATTEMPTS):
            await create_partitions(conn, table, today=YOUNG, ahead=0)
        young = await attempted_twice(conn, webhook, org, YOUNG, 1)
        sent = {"webhook-signature": "v1,****", "X-Webhook-Attempt": "3"}
        third = dataclasses.replace(attempt(young[0], 3, "success", NOW), request_headers=sent)
        await conn.execute(
            "UPDATE delivery.deliveries SET attempts = 2, status = 'pending'"
            " WHERE id = $1 AND created_at = $2",
            young[0].id,
            young[0].created_at,
        )
        assert await repository.record_attempts(conn, [third], now=NOW) == 1
        having = await conn.fetch(
            "SELECT c.relname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
            " WHERE a.attname = 'request_headers' AND NOT a.attisdropped"
        )
        kept = await conn.fetch(
            "SELECT attempt, request_headers::text AS headers FROM delivery.delivery_attempts"
            " WHERE delivery_id = $1 ORDER BY attempt",
            young[0].id,
        )
        before = await conn.fetchval(
            "SELECT count(*) FROM delivery.delivery_attempts WHERE request_headers IS NULL"
            " AND delivery_id = ANY($1::uuid[])",
            old,
        )
        report = await run_retention(conn, PLAN, retention_days=RETENTION_DAYS, now=NOW)
        left = await conn.fetchval(
            "SELECT count(*) FROM delivery.delivery_attempts WHERE delivery_id = ANY($1::uuid[])",
            old,
        )
    finally:
        await conn.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    tables = {r["relname"] for r in having}
    assert {
        "delivery_attempts",
        "delivery_attempts_default",
        partition_name("delivery_attempts", OLD),
        partition_name("delivery_attempts", YOUNG),
    } <= tables
    assert before == 2  # the old day's attempts, recorded before: null
    assert [(r["attempt"], r["headers"] is None) for r in kept] == [
        (1, True),
        (2, True),
        (3, False),
    ]
    assert kept[2]["headers"] == '{"X-Webhook-Attempt": "3", "webhook-signature": "v1,****"}'
    assert partition_name("delivery_attempts", OLD) in report.dropped
    assert left == 0
