"""Webhook secrets sealed in Postgres: what the row holds, legacy rows, rotation, bad keys."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import pytest
from standardwebhooks import Webhook as StandardWebhook

from services.delivery.app import Delivery
from services.registry.sealing import seal_stored_secrets
from shared.db import apply_migrations, migration_files, with_database
from shared.secrets_box import SecretsBox, generate_key, key_id
from shared.signing import hex_signature, new_secret
from tests.support.deliveries import create_webhook, request_deliveries, running_delivery
from tests.support.polling import eventually
from tests.support.processes import ServiceProcess, service_env
from tests.support.secrets import TEST_SECRETS_KEY
from tests.support.services import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
async def delivery(postgres_settings, kafka_settings) -> AsyncIterator[Delivery]:
    async with running_delivery(postgres_settings, kafka_settings) as service:
        yield service


async def final_status(pool, delivery_id: str) -> asyncpg.Record:
    async def done():
        row = await pool.fetchrow(
            "SELECT status, last_error FROM delivery.deliveries WHERE id = $1",
            uuid.UUID(delivery_id),
        )
        return row if row is not None and row["status"] != "pending" else None

    return await eventually(done, timeout_s=20)


async def test_the_row_holds_only_the_sealed_secret_and_deliveries_verify_with_the_201_one(
    registry, delivery, producer, topics, pool, receiver
):
    webhook = await create_webhook(registry, receiver.url("/sealed"))
    secret = webhook["secret"]

    row = await pool.fetchrow(
        "SELECT *, row_to_json(w)::text AS whole FROM registry.webhooks w WHERE id = $1",
        uuid.UUID(webhook["id"]),
    )
    assert row["legacy_secret"] is None
    assert secret not in row["whole"] and secret.upper() not in row["whole"].upper()
    assert row["secret_ciphertext"].startswith(key_id(TEST_SECRETS_KEY) + ":")
    assert SecretsBox([TEST_SECRETS_KEY]).open(row["secret_ciphertext"]) == secret

    [delivery_id] = await request_deliveries(producer, topics.deliveries, webhook, ["e-sealed"])
    assert (await final_status(pool, delivery_id))["status"] == "success"
    [got] = receiver.received["/sealed"]
    assert got.headers["X-Webhook-Signature"] == hex_signature(secret, got.body)
    StandardWebhook(secret).verify(got.body, got.headers)


async def test_a_secret_that_does_not_open_fails_its_delivery_with_the_reason_only(
    registry, delivery, producer, topics, pool, receiver
):
    good = await create_webhook(registry, receiver.url("/good"))
    bad = await create_webhook(registry, receiver.url("/bad"), retrySchedule=[])
    stranger = generate_key()  # sealed by a key this deployment never had
    await pool.execute(
        "UPDATE registry.webhooks SET secret_ciphertext = $2 WHERE id = $1",
        uuid.UUID(bad["id"]),
        SecretsBox([stranger]).seal(bad["secret"]),
    )

    bad_ids = await request_deliveries(producer, topics.deliveries, bad, ["b0", "b1", "b2"])
    good_ids = await request_deliveries(producer, topics.deliveries, good, ["g0", "g1", "g2"])

    for delivery_id in bad_ids:
        row = await final_status(pool, delivery_id)
        assert row["status"] == "failed"
        assert row["last_error"] == (
            f"the secret was sealed with key {key_id(stranger)},"
            " which ROOMHOOKS_SECRETS_KEY does not hold"
        )
    for delivery_id in good_ids:
        assert (await final_status(pool, delivery_id))["status"] == "success"
    assert receiver.received["/bad"] == []  # nothing is sent unsigned or wrongly signed
    assert len(receiver.received["/good"]) == 3
    attempts = await pool.fetch(
        "SELECT a.status_code, a.error FROM delivery.delivery_attempts a"
        " JOIN delivery.deliveries d ON d.id = a.delivery_id WHERE d.webhook_id = $1",
        uuid.UUID(bad["id"]),
    )
    assert len(attempts) == 3 and all(a["status_code"] is None for a in attempts)
    assert all(f"key {key_id(stranger)}" in a["error"] for a in attempts)


async def test_rotation_reseals_old_rows_under_the_newest_key_and_counts_lost_ones(pool):
    old, new, lost = generate_key(), generate_key(), generate_key()
    account = uuid.uuid4()
    await pool.execute("INSERT INTO registry.accounts (id, name) VALUES ($1, 'r')", account)
    secrets = {uuid.uuid4(): new_secret() for _ in range(5)}
    sealed_by = {wid: (lost if n == 0 else old) for n, wid in enumerate(secrets)}
    for wid, secret in secrets.items():
        await pool.execute(
            "INSERT INTO registry.webhooks (id, organization_id, url, secret_ciphertext,"
            " events, created_at, updated_at) VALUES ($1, $2, 'https://x.example/h', $3,"
            " '{participant.joined}', now(), now())",
            wid,
            account,
            SecretsBox([sealed_by[wid]]).seal(secret),
        )
    rotated = SecretsBox([new, old])

    report = await seal_stored_secrets(pool, rotated, batch=2)

    assert (report.sealed_plain, report.resealed, report.unreadable) == (0, 4, 1)
    rows = {
        r["id"]: r["secret_ciphertext"]
        for r in await pool.fetch("SELECT id, secret_ciphertext FROM registry.webhooks")
    }
    for wid, secret in secrets.items():
        if sealed_by[wid] is lost:
            assert rows[wid].startswith(key_id(lost) + ":")  # left as it was
        else:
            assert SecretsBox([new]).open(rows[wid]) == secret  # the old key can go now


async def _database_before_sealing(postgres_url: str) -> tuple[str, str]:
    """A new database with the registry migrated only up to 0003 (plain `secret`)."""
    name = f"rh_legacy_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(with_database(postgres_url, "postgres"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = with_database(postgres_url, name)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "CREATE SCHEMA registry; CREATE TABLE registry.schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for version, sql in migration_files("services.registry"):
            if version >= "0004":
                break
            async with conn.transaction():
                await conn.execute("SET LOCAL search_path TO registry, public")
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO registry.schema_migrations (version) VALUES ($1)", version
                )
        for schema, package in (("delivery", "services.delivery"),):
            await apply_migrations(conn, schema=schema, package=package)
    finally:
        await conn.close()
    return name, url


async def test_plain_secrets_from_before_sealing_are_sealed_when_the_registry_starts(
    postgres_url, broker, kafka_settings, tmp_path
):
    name, url = await _database_before_sealing(postgres_url)
    plain = {uuid.uuid4(): new_secret() for _ in range(3)}
    conn = await asyncpg.connect(url)
    registry = None
    try:
        account = uuid.uuid4()
        await conn.execute("INSERT INTO registry.accounts (id, name) VALUES ($1, 'old')", account)
        for wid, secret in plain.items():
            await conn.execute(
                "INSERT INTO registry.webhooks (id, organization_id, url, secret, events,"
                " created_at, updated_at) VALUES ($1, $2, 'https://x.example/h', $3,"
                " '{participant.joined}', now(), now())",
                wid,
                account,
                secret,
            )
        port = free_port()
        registry = ServiceProcess(
            "registry",
            service_env(
                database_url=url,
                bootstrap=broker,
                namespace=kafka_settings.topic_namespace,
                ROOMHOOKS_REGISTRY_PORT=str(port),
            ),
            tmp_path,
        )
        registry.start()

        async def ready() -> bool:
            async with aiohttp.ClientSession() as http:
                try:
                    async with http.get(f"http://127.0.0.1:{port}/readyz") as resp:
                        return resp.status == 200
                except aiohttp.ClientError:
                    assert registry.alive(), registry.log_text()
                    return False

        await eventually(ready, timeout_s=30, interval_s=0.2)
        rows = await conn.fetch(
            "SELECT id, legacy_secret, secret_ciphertext, row_to_json(w)::text AS whole"
            " FROM registry.webhooks w"
        )
        box = SecretsBox([TEST_SECRETS_KEY])
        assert len(rows) == len(plain)
        for row in rows:
            assert row["legacy_secret"] is None
            assert plain[row["id"]] not in row["whole"]
            assert box.open(row["secret_ciphertext"]) == plain[row["id"]]
        assert '"event": "secrets.sealed_at_start"' in registry.log_text()
        assert all(secret not in registry.log_text() for secret in plain.values())
    finally:
        if registry is not None:
            registry.stop()
        await conn.close()
        admin = await asyncpg.connect(with_database(postgres_url, "postgres"))
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
