"""In-memory fakes of the registry's repository Protocols, for unit tests of its services.

Each keeps what Postgres would, no more; the contract suites
(tests/integration/test_registry_contract_*.py) hold them to the Postgres adapters.
A transaction that raises leaves rows and outbox as they were.
"""

from __future__ import annotations

import asyncio
import copy
import math
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Self
from uuid import UUID

from services.registry.accounts.models import ApiKey, ApiKeyRow
from services.registry.audit.models import AuditEntry
from services.registry.deliveries.models import AttemptRow, DeliveryRow
from services.registry.errors import NotFound, QuotaExceeded
from services.registry.events.models import EventFilters, EventRow
from services.registry.outbox import OutboxEntry
from services.registry.webhooks.models import WebhookRow
from services.registry.webhooks.records import ListedWebhook, public_webhook
from services.registry.workflows.models import ExecutionRow, SavedByRow, VersionRow, WorkflowRow
from services.registry.workflows.stats import ExecutionCounts

After = tuple[datetime, UUID] | None


def newest_first(rows: list[Any], *, limit: int, after: After) -> list[Any]:
    """Rows by (created_at, id) descending, those before `after`, at most `limit`."""
    ordered = sorted(rows, key=lambda r: (r.created_at, r.id), reverse=True)
    return [r for r in ordered if after is None or (r.created_at, r.id) < after][:limit]


class FakeAccounts:
    """Accounts, the keys as minted (`keys`, by digest) and as they are now (`state`)."""

    def __init__(self) -> None:
        self.accounts: dict[UUID, str] = {}
        self.keys: dict[str, ApiKeyRow] = {}
        self.state: dict[UUID, ApiKey] = {}
        self.use_writes: list[dict[UUID, datetime]] = []  # each record_use call's argument
        self.audited: list[AuditEntry] = []
        self._locks: dict[UUID, asyncio.Lock] = {}

    async def insert_account(self, account_id: UUID, name: str) -> None:
        self.accounts[account_id] = name

    async def account_exists(self, account_id: UUID) -> bool:
        return account_id in self.accounts

    @asynccontextmanager
    async def keys_of(self, account_id: UUID) -> AsyncIterator[_FakeAccountKeys]:
        if account_id not in self.accounts:
            raise NotFound(str(account_id))
        async with self._locks.setdefault(account_id, asyncio.Lock()):
            writes = _FakeAccountKeys(self, account_id)
            yield writes
            self.keys.update(writes.keys)  # kept only when the block ends without raising
            self.state.update(writes.state)
            self.audited.extend(writes.audited)

    async def find_key(self, token_sha256: str, *, now: datetime) -> ApiKey | None:
        row = self.keys.get(token_sha256)
        key = self.state.get(row.id) if row is not None else None
        return key if key is not None and key.live(now) else None

    async def page_keys(self, account_id: UUID, *, limit: int, after: After) -> list[ApiKey]:
        owned = [k for k in self.state.values() if k.account_id == account_id]
        return newest_first(owned, limit=limit, after=after)

    async def record_use(self, used: Mapping[UUID, datetime]) -> None:
        self.use_writes.append(dict(used))
        for key_id, at in used.items():
            key = self.state.get(key_id)
            if key is not None and (key.last_used_at is None or key.last_used_at < at):
                self.state[key_id] = replace(key, last_used_at=at)


class _FakeAccountKeys:
    """One account's keys in a transaction: its writes are staged here until it ends."""

    def __init__(self, store: FakeAccounts, account_id: UUID) -> None:
        self._store = store
        self._account_id = account_id
        self.keys: dict[str, ApiKeyRow] = {}
        self.state: dict[UUID, ApiKey] = {}
        self.audited: list[AuditEntry] = []

    async def live_keys(self, now: datetime) -> list[ApiKey]:
        await asyncio.sleep(0)  # as a query would: other tasks run meanwhile
        current = self._store.state | self.state
        return [k for k in current.values() if k.account_id == self._account_id and k.live(now)]

    async def get(self, key_id: UUID) -> ApiKey | None:
        key = self.state.get(key_id) or self._store.state.get(key_id)
        return key if key is not None and key.account_id == self._account_id else None

    async def insert(self, key: ApiKeyRow) -> ApiKey:
        self.keys[key.token_sha256] = key
        self.state[key.id] = ApiKey(
            id=key.id,
            account_id=self._account_id,
            role=key.role,
            label=key.label,
            token_prefix=key.token_prefix,
            created_at=key.created_at,
            expires_at=key.expires_at,
            last_used_at=None,
            revoked_at=None,
        )
        return self.state[key.id]

    async def revoke(self, key_id: UUID, now: datetime) -> ApiKey:
        key = await self.get(key_id)
        assert key is not None
        self.state[key_id] = replace(key, revoked_at=now)
        return self.state[key_id]

    async def audit(self, entry: AuditEntry) -> None:
        self.audited.append(entry)


class _FakeTable:
    """Rows by id, each in an account, and the outbox; the object is its own transaction."""

    table = ""

    def __init__(self) -> None:
        self.rows: dict[UUID, Any] = {}
        self.outbox: list[OutboxEntry] = []
        self.audited: list[AuditEntry] = []

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Self]:
        before = copy.deepcopy(self.__dict__)
        try:
            yield self
        except BaseException:
            self.__dict__.update(before)
            raise

    async def get(self, organization_id: UUID, row_id: UUID) -> Any:
        row = self.rows.get(row_id)
        return row if row is not None and row.organization_id == organization_id else None

    async def get_for_update(self, organization_id: UUID, row_id: UUID) -> Any:
        return await self.get(organization_id, row_id)

    async def page(self, organization_id: UUID, *, limit: int, after: After) -> list[Any]:
        owned = [r for r in self.rows.values() if r.organization_id == organization_id]
        return newest_first(owned, limit=limit, after=after)

    async def check_quota(self, organization_id: UUID, quota: int) -> None:
        if sum(r.organization_id == organization_id for r in self.rows.values()) >= quota:
            raise QuotaExceeded(self.table, quota)

    async def all(self) -> list[Any]:
        return sorted(self.rows.values(), key=lambda r: r.id)

    async def enqueue(self, entries: Sequence[OutboxEntry]) -> None:
        self.outbox.extend(entries)

    async def audit(self, entry: AuditEntry) -> None:
        self.audited.append(entry)

    def _pop(self, organization_id: UUID, row_id: UUID) -> Any:
        row = self.rows.get(row_id)
        if row is None or row.organization_id != organization_id:
            return None
        return self.rows.pop(row_id)


def listed(row: WebhookRow) -> ListedWebhook:
    """A listed webhook as Postgres renders it (repository.py), rendered here by the model:
    its JSON document without headers, cut where they go."""
    before, after = public_webhook(row).model_dump_json().split(',"headers":{},')
    return ListedWebhook(row.id, row.created_at, row.headers_ciphertext, before, after)


class FakeWebhooks(_FakeTable):
    table = "webhooks"

    async def listing(
        self, organization_id: UUID, *, limit: int, after: After, only: Any = None
    ) -> list[ListedWebhook]:
        owned = [
            r
            for r in self.rows.values()
            if r.organization_id == organization_id and (only is None or r.id in only)
        ]
        return [listed(r) for r in newest_first(owned, limit=limit, after=after)]

    async def insert(self, row: WebhookRow) -> WebhookRow:
        self.rows[row.id] = row
        return row

    async def update(self, row: WebhookRow) -> WebhookRow:
        stored = self.rows[row.id]
        self.rows[row.id] = replace(
            row,
            secret_ciphertext=stored.secret_ciphertext,
            previous_secret_ciphertext=stored.previous_secret_ciphertext,
            previous_secret_until=stored.previous_secret_until,
            created_at=stored.created_at,
            revision=stored.revision + 1,
        )
        return self.rows[row.id]

    async def replace_secret(self, row: WebhookRow) -> WebhookRow:
        stored = self.rows[row.id]
        self.rows[row.id] = replace(
            stored,
            secret_ciphertext=row.secret_ciphertext,
            previous_secret_ciphertext=row.previous_secret_ciphertext,
            previous_secret_until=row.previous_secret_until,
            updated_at=row.updated_at,
            revision=stored.revision + 1,
        )
        return self.rows[row.id]

    async def delete(self, organization_id: UUID, webhook_id: UUID) -> WebhookRow | None:
        return self._pop(organization_id, webhook_id)


class FakeWorkflows(_FakeTable):
    """Workflows with their versions' code, and the runs the workflow runner recorded."""

    table = "workflows"

    def __init__(self) -> None:
        super().__init__()
        self.version_rows: dict[tuple[UUID, int], VersionRow] = {}  # without saved_by
        self.runs: list[tuple[UUID, ExecutionRow]] = []  # (organization id, run)

    async def insert(self, row: WorkflowRow) -> None:
        self.rows[row.id] = row
        await self.insert_version(row, kept=1)

    async def insert_version(self, row: WorkflowRow, *, kept: int) -> None:
        self.version_rows[(row.id, row.version)] = VersionRow(
            row.id, row.version, row.language, row.updated_at, None, row.code
        )
        for workflow_id, version in list(self.version_rows):
            if workflow_id == row.id and version <= row.version - kept:
                del self.version_rows[(workflow_id, version)]

    def _saved_by(self, organization_id: UUID, row: VersionRow) -> SavedByRow | None:
        """As Postgres finds it: the audit entry of the save, a minute either way."""
        for entry in sorted(self.audited, key=lambda e: e.created_at):
            if (
                entry.account_id == organization_id
                and entry.target_id == str(row.workflow_id)
                and entry.action in ("workflow.created", "workflow.updated")
                and abs(entry.created_at - row.created_at) <= timedelta(minutes=1)
                and {"field": "version", "value": row.version} in entry.changes
            ):
                actor = entry.actor
                return SavedByRow(actor.kind, actor.key_id, actor.label, actor.role)
        return None

    async def versions(
        self, organization_id: UUID, workflow_id: UUID, *, limit: int, before: int | None
    ) -> list[VersionRow]:
        if await self.get(organization_id, workflow_id) is None:
            return []
        found = [
            replace(v, code=None, saved_by=self._saved_by(organization_id, v))
            for (wid, number), v in self.version_rows.items()
            if wid == workflow_id and (before is None or number < before)
        ]
        return sorted(found, key=lambda v: v.version, reverse=True)[:limit]

    async def version(
        self, organization_id: UUID, workflow_id: UUID, version: int
    ) -> VersionRow | None:
        row = self.version_rows.get((workflow_id, version))
        if row is None or await self.get(organization_id, workflow_id) is None:
            return None
        return replace(row, saved_by=self._saved_by(organization_id, row))

    async def stats(
        self, organization_id: UUID, workflow_id: UUID, *, period_s: int, since: datetime
    ) -> list[ExecutionCounts]:
        runs = [
            run
            for org, run in self.runs
            if org == organization_id and run.workflow_id == workflow_id and run.created_at >= since
        ]
        buckets: dict[datetime | None, list[ExecutionRow]] = {None: runs}
        for run in runs:
            offset = (run.created_at - since).total_seconds() // period_s
            buckets.setdefault(since + timedelta(seconds=offset * period_s), []).append(run)
        return [_counts(start, found) for start, found in buckets.items()]

    async def update(self, row: WorkflowRow) -> None:
        stored = self.rows[row.id]
        self.rows[row.id] = replace(
            row,
            code=self.version_rows[(row.id, row.version)].code,
            created_at=stored.created_at,
            revision=stored.revision + 1,
        )

    async def delete(self, organization_id: UUID, workflow_id: UUID) -> bool:
        return self._pop(organization_id, workflow_id) is not None

    def record_run(self, organization_id: UUID, run: ExecutionRow) -> None:
        """What the workflow runner does (not part of the Protocol)."""
        self.runs.append((organization_id, run))

    async def executions(
        self,
        organization_id: UUID,
        workflow_id: UUID,
        *,
        status: str | None,
        limit: int,
        after: After,
    ) -> list[ExecutionRow]:
        runs = [
            run
            for org, run in self.runs
            if org == organization_id
            and run.workflow_id == workflow_id
            and status in (None, run.status)
        ]
        return newest_first(runs, limit=limit, after=after)

    async def execution(
        self, organization_id: UUID, workflow_id: UUID, execution_id: UUID
    ) -> ExecutionRow | None:
        runs = await self.executions(
            organization_id, workflow_id, status=None, limit=len(self.runs), after=None
        )
        return next((run for run in runs if run.id == execution_id), None)


def _counts(start: datetime | None, runs: list[ExecutionRow]) -> ExecutionCounts:
    """As the statement counts them; the p95 as percentile_disc takes it."""
    durations = sorted(r.duration_ms for r in runs if r.duration_ms is not None)
    p95 = durations[math.ceil(0.95 * len(durations)) - 1] if durations else None
    statuses = [r.status for r in runs]
    return ExecutionCounts(
        start,
        statuses.count("running"),
        statuses.count("success"),
        statuses.count("error"),
        statuses.count("timeout"),
        p95,
    )


class FakeDeliveryLog:
    """Webhooks, the deliveries and attempts the delivery service recorded, and the outbox."""

    def __init__(self) -> None:
        self.webhooks: dict[UUID, WebhookRow] = {}
        self.deliveries: list[tuple[UUID, DeliveryRow]] = []  # (organization id, delivery)
        # (delivery id, its created_at) -> its attempts
        self.attempt_rows: dict[tuple[UUID, datetime], list[AttemptRow]] = {}
        self.outbox: list[OutboxEntry] = []
        self.audited: list[AuditEntry] = []

    def record(self, organization_id: UUID, delivery: DeliveryRow, *attempts: AttemptRow) -> None:
        """What the delivery service does (not part of the Protocol)."""
        self.deliveries.append((organization_id, delivery))
        key = (delivery.id, delivery.created_at)
        self.attempt_rows.setdefault(key, []).extend(attempts)

    async def webhook(self, organization_id: UUID, webhook_id: UUID) -> WebhookRow | None:
        row = self.webhooks.get(webhook_id)
        return row if row is not None and row.organization_id == organization_id else None

    async def page(
        self,
        organization_id: UUID,
        webhook_id: UUID,
        *,
        status: str | None,
        limit: int,
        after: After,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[DeliveryRow]:
        rows = [
            d
            for org, d in self.deliveries
            if org == organization_id
            and d.webhook_id == webhook_id
            and status in (None, d.status)
            and (since is None or d.created_at >= since)
            and (until is None or d.created_at < until)
        ]
        return newest_first(rows, limit=limit, after=after)

    async def find(
        self, organization_id: UUID, webhook_id: UUID, delivery_id: UUID
    ) -> DeliveryRow | None:
        rows = await self.page(
            organization_id, webhook_id, status=None, limit=len(self.deliveries), after=None
        )
        return next((d for d in rows if d.id == delivery_id), None)

    async def attempts(self, delivery_id: UUID, created_at: datetime) -> list[AttemptRow]:
        found = self.attempt_rows.get((delivery_id, created_at), [])
        return sorted(found, key=lambda a: a.attempt)

    async def enqueue(
        self, entries: Sequence[OutboxEntry], *, audit: AuditEntry | None = None
    ) -> None:
        self.outbox.extend(entries)
        self.audited.extend([audit] if audit is not None else [])


def event_row(organization_id: UUID, **fields: Any) -> EventRow:
    """A row of the event log as fanout writes it (accepted, reaching nothing), for tests: an
    accepted event's id is UUIDv5(organization id, event id), a rejected one's random."""
    values: dict[str, Any] = {
        "event_id": f"evt-{uuid.uuid4().hex[:8]}",
        "event": "participant.joined",
        "room_id": "room_1",
        "status": "accepted",
        "reason": None,
        "payload": '{"id":"evt"}',
        "webhook_ids": [],
        "workflow_ids": [],
        "received_at": datetime(2026, 5, 1, 12, 0, tzinfo=UTC),
    } | fields
    accepted = values["status"] == "accepted"
    values.setdefault(
        "id", uuid.uuid5(organization_id, values["event_id"]) if accepted else uuid.uuid4()
    )
    return EventRow(**values)


class FakeEventLog:
    """The events fanout recorded, and the statuses of the deliveries and executions that the
    delivery service and the workflow runner recorded for them."""

    def __init__(self) -> None:
        self.events: list[tuple[UUID, EventRow]] = []  # (organization id, row)
        self.statuses: dict[str, dict[UUID, tuple[UUID, str]]] = {"delivery": {}, "run": {}}

    def record(self, organization_id: UUID, row: EventRow) -> None:
        """What fanout does (not part of the Protocol); the first row of an id is kept."""
        if all(kept.id != row.id for _, kept in self.events):
            self.events.append((organization_id, row))

    def record_status(
        self,
        kind: str,
        organization_id: UUID,
        row_id: UUID,
        status: str,
        created_at: datetime | None = None,
    ) -> None:
        """A delivery's (`kind` "delivery") or an execution's ("run") status, as recorded (the
        fake finds each by id, whenever it was created, as Postgres does in the end)."""
        self.statuses[kind][row_id] = (organization_id, status)

    async def page(
        self, organization_id: UUID, filters: EventFilters, *, limit: int, after: After
    ) -> list[EventRow]:
        rows = [
            replace(row, payload=None)
            for org, row in self.events
            if org == organization_id and _passes(row, filters)
        ]
        ordered = sorted(rows, key=lambda r: (r.received_at, r.id), reverse=True)
        return [r for r in ordered if after is None or (r.received_at, r.id) < after][:limit]

    async def find(self, organization_id: UUID, event_id: str) -> EventRow | None:
        accepted_id = uuid.uuid5(organization_id, event_id)  # as fanout writes it
        mine = [
            r
            for org, r in self.events
            if org == organization_id
            and (r.id == accepted_id if r.status == "accepted" else r.event_id == event_id)
        ]
        ordered = sorted(
            mine, key=lambda r: (r.status == "accepted", r.received_at, r.id), reverse=True
        )
        return ordered[0] if ordered else None

    async def delivery_statuses(
        self, organization_id: UUID, delivery_ids: Sequence[UUID], *, received_at: datetime
    ) -> dict[UUID, str]:
        return self._statuses("delivery", organization_id, delivery_ids)

    async def execution_statuses(
        self, organization_id: UUID, execution_ids: Sequence[UUID], *, received_at: datetime
    ) -> dict[UUID, str]:
        return self._statuses("run", organization_id, execution_ids)

    def _statuses(self, kind: str, organization_id: UUID, ids: Sequence[UUID]) -> dict[UUID, str]:
        held = self.statuses[kind]
        return {i: held[i][1] for i in ids if i in held and held[i][0] == organization_id}


def _passes(row: EventRow, filters: EventFilters) -> bool:
    return (
        filters.event in (None, row.event)
        and filters.room_id in (None, row.room_id)
        and filters.status in (None, row.status)
        and (filters.since is None or row.received_at >= filters.since)
        and (filters.until is None or row.received_at < filters.until)
    )


class FakeAuditLog:
    """AuditLog over `entries`, as the rooms' transactions wrote them (each write fake keeps
    its own in `audited`)."""

    def __init__(self, entries: Sequence[AuditEntry] = ()) -> None:
        self.entries: list[AuditEntry] = list(entries)

    async def page(
        self, account_id: UUID, *, since: datetime | None, limit: int, after: After
    ) -> list[AuditEntry]:
        owned = [
            e
            for e in self.entries
            if e.account_id == account_id and (since is None or e.created_at >= since)
        ]
        return newest_first(owned, limit=limit, after=after)
