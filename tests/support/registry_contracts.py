"""What the registry's contract suites run against: each Protocol's fake and its Postgres
adapter, with what a test needs around them that the Protocol does not offer (an account to
own rows, what other services record, the outbox as committed)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from services.registry.accounts.repository import PostgresAccounts
from services.registry.deliveries.models import AttemptRow, DeliveryRow
from services.registry.deliveries.repository import PostgresDeliveryLog
from services.registry.outbox import OutboxEntry
from services.registry.webhooks.models import WebhookRow
from services.registry.webhooks.repository import PostgresWebhooks, WebhookSql
from services.registry.workflows.models import ExecutionRow, WorkflowRow
from services.registry.workflows.repository import PostgresWorkflows
from tests.support.registry_fakes import (
    FakeAccounts,
    FakeDeliveryLog,
    FakeWebhooks,
    FakeWorkflows,
)

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def webhook_row(organization_id: UUID, *, minute: int = 0, **fields: Any) -> WebhookRow:
    at = T0 + timedelta(minutes=minute)
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "organization_id": organization_id,
        "name": "hook",
        "url": "https://hooks.example.com/in",
        "secret_ciphertext": "k1:sealed",
        "events": ["participant.joined"],
        "room_id": None,
        "enabled": True,
        "disabled_reason": None,
        "retry_schedule": None,
        "revision": 1,
        "created_at": at,
        "updated_at": at,
    }
    return WebhookRow(**(values | fields))


def workflow_row(organization_id: UUID, *, minute: int = 0, **fields: Any) -> WorkflowRow:
    at = T0 + timedelta(minutes=minute)
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "organization_id": organization_id,
        "name": "flow",
        "events": ["participant.joined"],
        "room_id": None,
        "enabled": True,
        "language": "js",
        "version": 1,
        "revision": 1,
        "created_at": at,
        "updated_at": at,
        "code": "export default async function () {}",
    }
    return WorkflowRow(**(values | fields))


def execution_row(workflow_id: UUID, *, minute: int = 0, status: str = "success") -> ExecutionRow:
    return ExecutionRow(
        id=uuid.uuid4(),
        workflow_id=workflow_id,
        version=1,
        event_id=f"evt-{minute}",
        event="participant.joined",
        status=status,
        started_at=T0,
        duration_ms=12,
        result={"ok": True},
        error=None,
        logs=[{"level": "info", "message": "hi"}],
        created_at=T0 + timedelta(minutes=minute),
    )


def delivery_row(webhook_id: UUID, *, minute: int = 0, status: str = "success") -> DeliveryRow:
    at = T0 + timedelta(minutes=minute)
    return DeliveryRow(
        id=uuid.uuid4(),
        webhook_id=webhook_id,
        event_id=f"evt-{minute}",
        event="participant.joined",
        payload='{"id":"evt"}',
        status=status,
        attempts=1,
        last_attempt_at=at,
        next_attempt_at=None,
        status_code=200,
        last_error=None,
        created_at=at,
        updated_at=at,
    )


def attempt_row(attempt: int, request_headers: dict[str, str] | None = None) -> AttemptRow:
    return AttemptRow(
        attempt=attempt,
        started_at=T0 + timedelta(seconds=attempt),
        duration_ms=5,
        status_code=500 if attempt == 1 else 200,
        error=None,
        response_body="ok",
        request_headers=request_headers,
    )


@dataclass
class Subject:
    """One Protocol's implementation under test, and its surroundings."""

    repo: Any
    pool: asyncpg.Pool | None = None

    async def account(self) -> UUID:
        """An account that may own rows (Postgres: a foreign key wants it)."""
        account_id = uuid.uuid4()
        if self.pool is not None:
            await self.pool.execute(
                "INSERT INTO registry.accounts (id, name) VALUES ($1, 'contract')", account_id
            )
        return account_id

    async def outbox(self) -> list[OutboxEntry]:
        """What the outbox holds, committed, oldest first."""
        if self.pool is None:
            return list(self.repo.outbox)
        rows = await self.pool.fetch("SELECT topic, key, value FROM registry.outbox ORDER BY id")
        return [(r["topic"], r["key"], r["value"]) for r in rows]

    async def add_webhook(self, row: WebhookRow) -> None:
        if self.pool is None:
            self.repo.webhooks[row.id] = row
            return
        async with self.pool.acquire() as conn:
            await WebhookSql(conn).insert(row)

    async def record_run(self, organization_id: UUID, run: ExecutionRow) -> None:
        """As the workflow runner records one."""
        if self.pool is None:
            self.repo.record_run(organization_id, run)
            return
        await self.pool.execute(
            "INSERT INTO workflow.executions (id, workflow_id, organization_id, version,"
            " event_id, event, status, started_at, duration_ms, result, error, logs,"
            " created_at, updated_at, fetches)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14)",
            run.id,
            run.workflow_id,
            organization_id,
            run.version,
            run.event_id,
            run.event,
            run.status,
            run.started_at,
            run.duration_ms,
            run.result,
            run.error,
            run.logs,
            run.created_at,
            run.fetches,
        )

    async def record_delivery(
        self, organization_id: UUID, delivery: DeliveryRow, *attempts: AttemptRow
    ) -> None:
        """As the delivery service records one and its attempts."""
        if self.pool is None:
            self.repo.record(organization_id, delivery, *attempts)
            return
        d = delivery
        await self.pool.execute(
            "INSERT INTO delivery.deliveries (id, webhook_id, organization_id, event_id, event,"
            " payload, status, attempts, last_attempt_at, next_attempt_at, status_code,"
            " last_error, created_at, updated_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            d.id,
            d.webhook_id,
            organization_id,
            d.event_id,
            d.event,
            d.payload,
            d.status,
            d.attempts,
            d.last_attempt_at,
            d.next_attempt_at,
            d.status_code,
            d.last_error,
            d.created_at,
            d.updated_at,
        )
        await self.pool.executemany(
            "INSERT INTO delivery.delivery_attempts (delivery_id, delivery_created_at, attempt,"
            " started_at, duration_ms, status_code, error, response_body, request_headers)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            [
                (
                    d.id,
                    d.created_at,
                    a.attempt,
                    a.started_at,
                    a.duration_ms,
                    a.status_code,
                    a.error,
                    a.response_body,
                    a.request_headers,
                )
                for a in attempts
            ],
        )


_FAKES = {
    "accounts": FakeAccounts,
    "webhooks": FakeWebhooks,
    "workflows": FakeWorkflows,
    "deliveries": FakeDeliveryLog,
}
_ADAPTERS = {
    "accounts": PostgresAccounts,
    "webhooks": PostgresWebhooks,
    "workflows": PostgresWorkflows,
    "deliveries": PostgresDeliveryLog,
}


def subject_fixture(protocol: str) -> Any:
    """A fixture that runs each test twice: on the fake, and on the Postgres adapter with a
    migrated database of the test's own."""

    @pytest.fixture(params=["fake", "postgres"])
    def subject(request: pytest.FixtureRequest) -> Subject:
        if request.param == "fake":
            return Subject(_FAKES[protocol]())
        pool = request.getfixturevalue("pool")
        return Subject(_ADAPTERS[protocol](pool), pool)

    return subject
