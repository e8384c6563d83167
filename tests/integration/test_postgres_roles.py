"""The services' Postgres roles on the real server, after the migrate step has run as the owner:
each writes only its own schema, reads only what ARCHITECTURE.md allows, changes no schema,
and the services do their work under them with ROOMHOOKS_MIGRATE_ON_START off.

Roles belong to the whole server: each test gets roles of its own prefix, dropped after.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest
from pydantic import SecretStr

from shared.db import SchemaNotReady, prepare_schema, with_database
from shared.db_roles import SCHEMA_ACCESS
from shared.migrate import migrate
from shared.settings import PostgresSettings
from tests.support.deliveries import (
    create_webhook,
    delivery_request,
    running_delivery,
    send_request,
)
from tests.support.devstack import clean_environ
from tests.support.polling import eventually
from tests.support.receiver import Script

pytestmark = pytest.mark.integration

# Schema -> the package that ships its migrations.
PACKAGES = {
    "registry": "services.registry",
    "delivery": "services.delivery",
    "workflow": "services.workflow_runner",
    "events": "services.fanout",
}


@dataclass
class RolesDatabase:
    owner_url: str
    prefix: str

    def settings(self, **overrides) -> PostgresSettings:
        """The owner's settings for the migrate step."""
        passwords = {schema: SecretStr(f"pw-{schema}") for schema in PACKAGES}
        return PostgresSettings(
            url=self.owner_url, role_prefix=self.prefix, role_passwords=passwords, **overrides
        )

    def url_of(self, schema: str) -> str:
        """How the service writing `schema` connects: as its own role."""
        role = f"{self.prefix}{schema}"
        return self.owner_url.replace("://postgres@", f"://{role}:pw-{schema}@", 1)

    async def connect_as(self, schema: str) -> asyncpg.Connection:
        return await asyncpg.connect(self.url_of(schema))


@pytest.fixture
async def roles_db(postgres_url: str) -> AsyncIterator[RolesDatabase]:
    """An empty database, every schema migrated and granted by the migrate step (as the
    owner: the local server's superuser)."""
    tag = uuid.uuid4().hex[:10]
    name, prefix = f"rh_roles_{tag}", f"rh{tag}_"
    admin = await asyncpg.connect(with_database(postgres_url, "postgres"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    db = RolesDatabase(with_database(postgres_url, name), prefix)
    assert "://postgres@" in db.owner_url
    try:
        for schema, package in PACKAGES.items():
            await migrate(db.settings(), schema=schema, package=package)
        yield db
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        for entry in SCHEMA_ACCESS:
            await admin.execute(f'DROP ROLE IF EXISTS "{prefix}{entry.schema}"')
        await admin.close()


@pytest.fixture
def database_url(roles_db: RolesDatabase) -> str:
    """The suites' registry fixture, on this database as the registry's role."""
    return roles_db.url_of("registry")


async def denied(conn: asyncpg.Connection, sql: str) -> bool:
    try:
        await conn.execute(sql)
    except asyncpg.InsufficientPrivilegeError:
        return True
    return False


WEBHOOK_ID = "00000000-0000-0000-0000-000000000001"


async def test_the_delivery_role_reads_the_webhooks_but_writes_only_its_own_schema(roles_db):
    conn = await roles_db.connect_as("delivery")
    try:
        assert await conn.fetchval("SELECT count(*) FROM registry.webhooks") == 0
        for sql in [
            f"UPDATE registry.webhooks SET enabled = false WHERE id = '{WEBHOOK_ID}'",
            f"DELETE FROM registry.webhooks WHERE id = '{WEBHOOK_ID}'",
            "INSERT INTO registry.webhooks (id) VALUES (gen_random_uuid())",
            "SELECT count(*) FROM registry.api_keys",
            "SELECT count(*) FROM workflow.executions",
            "SELECT count(*) FROM events.events",
        ]:
            assert await denied(conn, sql), sql
        # its own rows: written, changed, removed
        await conn.execute(
            "INSERT INTO delivery.deliveries (id, webhook_id, organization_id, event_id, event,"
            " payload, status, created_at, updated_at) VALUES (gen_random_uuid(),"
            f" '{WEBHOOK_ID}', gen_random_uuid(), 'e1', 'participant.joined', '{{}}', 'pending',"
            " now(), now())"
        )
        assert await conn.execute("UPDATE delivery.deliveries SET status = 'success'") == "UPDATE 1"
        assert await conn.execute("DELETE FROM delivery.deliveries") == "DELETE 1"
    finally:
        await conn.close()


@pytest.mark.parametrize("schema", list(PACKAGES))
async def test_no_service_role_can_change_a_schema(roles_db, schema):
    conn = await roles_db.connect_as(schema)
    try:
        for sql in [
            f"CREATE TABLE {schema}.intruder (id int)",
            "CREATE TABLE public.intruder (id int)",
            "CREATE SCHEMA intruder",
            f"ALTER TABLE {schema}.schema_migrations ADD COLUMN intruder int",
            f"DROP TABLE {schema}.schema_migrations",
            f"TRUNCATE {schema}.schema_migrations",
            f"INSERT INTO {schema}.schema_migrations (version) VALUES ('9999_intruder')",
        ]:
            assert await denied(conn, sql), sql
        assert await conn.fetchval(f"SELECT count(*) > 0 FROM {schema}.schema_migrations")
    finally:
        await conn.close()


async def test_the_registry_role_reads_every_log_and_writes_only_its_own_schema(roles_db):
    conn = await roles_db.connect_as("registry")
    try:
        for table in ("delivery.deliveries", "delivery.delivery_attempts",
                      "workflow.executions", "events.events"):  # fmt: skip
            assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 0
        assert await denied(conn, "DELETE FROM delivery.deliveries")
        assert await denied(conn, "UPDATE workflow.executions SET status = 'error'")
        await conn.execute(
            "INSERT INTO registry.accounts (id, name) VALUES (gen_random_uuid(), 'a')"
        )
    finally:
        await conn.close()


async def test_the_migrate_step_runs_again_without_change(roles_db):
    privileges = """
        SELECT r.rolname, c.oid::regclass::text, p.privilege
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        CROSS JOIN pg_roles r
        CROSS JOIN unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE']) AS p(privilege)
        WHERE n.nspname = ANY($1) AND c.relkind IN ('r', 'p') AND r.rolname LIKE $2
          AND has_table_privilege(r.oid, c.oid, p.privilege)
        ORDER BY 1, 2, 3"""
    args = (list(PACKAGES), roles_db.prefix.replace("_", r"\_") + "%")
    owner = await asyncpg.connect(roles_db.owner_url)
    try:
        before = await owner.fetch(privileges, *args)
        for schema, package in PACKAGES.items():
            assert await migrate(roles_db.settings(), schema=schema, package=package) == []
        assert await owner.fetch(privileges, *args) == before
        assert (f"{roles_db.prefix}delivery", "registry.webhooks", "SELECT") in before
    finally:
        await owner.close()


async def test_the_migrate_command_exits_1_with_the_reason_on_an_unknown_schema(roles_db):
    env = {**os.environ, "DATABASE_URL": roles_db.owner_url,
           "ROOMHOOKS_PG_ROLE_PREFIX": roles_db.prefix, "ROOMHOOKS_LOG_FORMAT": "json"}  # fmt: skip
    command = [sys.executable, "-m", "services.delivery", "migrate"]
    ok = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    env["ROOMHOOKS_PG_ROLE_PASSWORDS"] = '{"deliveries": "pw-never-shown"}'
    refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    said = refused.stdout + refused.stderr
    assert refused.returncode == 1
    assert "ROOMHOOKS_PG_ROLE_PASSWORDS names no schema: deliveries" in said
    assert "pw-never-shown" not in said


async def test_a_service_refuses_to_start_on_a_schema_not_migrated(roles_db):
    settings = PostgresSettings(url=roles_db.owner_url, migrate_on_start=False)
    conn = await asyncpg.connect(roles_db.owner_url)
    try:
        await conn.execute("DELETE FROM delivery.schema_migrations")
        with pytest.raises(SchemaNotReady, match="schema delivery lacks migrations 0001_init") as e:
            await prepare_schema(conn, settings, schema="delivery", package="services.delivery")
        assert "run `python -m services.delivery migrate` as the owner role" in str(e.value)
        with pytest.raises(SchemaNotReady, match="lacks migrations"):
            await prepare_schema(conn, settings, schema="nothing", package="services.delivery")
    finally:
        await conn.close()


async def test_a_service_role_starts_on_a_migrated_schema_and_may_not_migrate_one(roles_db):
    """Even with ROOMHOOKS_MIGRATE_ON_START left on: nothing to apply, nothing attempted; a
    migration to apply is refused with what to run, not a bare "permission denied"."""
    migrating = PostgresSettings(url=roles_db.url_of("delivery"))
    conn = await roles_db.connect_as("delivery")
    owner = await asyncpg.connect(roles_db.owner_url)
    try:
        await prepare_schema(conn, migrating, schema="delivery", package="services.delivery")
        await owner.execute("DELETE FROM delivery.schema_migrations")
        with pytest.raises(SchemaNotReady, match="this role may not migrate schema delivery"):
            await prepare_schema(conn, migrating, schema="delivery", package="services.delivery")
        with pytest.raises(SchemaNotReady, match=r"may not read registry\.schema_migrations"):
            await prepare_schema(conn, migrating, schema="registry", package="services.registry")
    finally:
        await conn.close()
        await owner.close()


async def test_registry_and_delivery_do_their_work_under_their_roles(
    roles_db, registry, kafka_settings, receiver, producer, topics
):
    """The registry's API (accounts, keys, a webhook) as the registry's role; delivery,
    started as its role with ROOMHOOKS_MIGRATE_ON_START off, stores the request, posts it
    and records the attempt."""
    webhook = await create_webhook(registry, receiver.script("/roles", Script()))
    delivery_pg = PostgresSettings(url=roles_db.url_of("delivery"), migrate_on_start=False)
    async with running_delivery(delivery_pg, kafka_settings):
        message = delivery_request(webhook, "e-roles")
        await (await send_request(producer, topics.deliveries, message))
        owner = await asyncpg.connect(roles_db.owner_url)
        try:

            async def succeeded():
                return await owner.fetchval(
                    "SELECT status = 'success' FROM delivery.deliveries WHERE id = $1",
                    uuid.UUID(message.delivery_id),
                )

            await eventually(succeeded, timeout_s=20)
        finally:
            await owner.close()
    assert len(receiver.received["/roles"]) == 1


@pytest.mark.parametrize("schema", list(PACKAGES))
async def test_retention_as_a_service_role_is_refused_with_the_reason(roles_db, schema):
    """Retention makes and drops day partitions, DDL a service role may not do: it is refused
    before any change, exit 1 with what to run instead, never a traceback."""
    env = {**clean_environ(), "DATABASE_URL": roles_db.url_of(schema),
           "ROOMHOOKS_LOG_FORMAT": "json"}  # fmt: skip
    command = [sys.executable, "-m", PACKAGES[schema], "retention"]
    refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    said = refused.stdout + refused.stderr
    assert refused.returncode == 1, said
    assert f"does not own schema {schema}" in said
    assert "as the owner role" in said
    assert "Traceback" not in said
    assert f"pw-{schema}" not in said
