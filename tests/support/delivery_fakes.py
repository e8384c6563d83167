"""In-memory fakes of what `DeliveryService` depends on (services/delivery/dependencies.py).

Each passes the contract suite its real adapter passes (tests/integration/
test_delivery_contracts.py), so a unit test on these fakes says what the service does on
Postgres and HTTP.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

import asyncpg
from yarl import URL

from services.delivery.answers import answered, failed
from services.delivery.policy import AttemptResult, Outcome
from services.delivery.repository import AttemptRow, Job, Target
from shared.messages import DeliveryRequested, RedeliverRequested
from shared.ssrf import AddressPolicy, guard_message


@dataclass
class StoredDelivery:
    """A row of delivery.deliveries, as far as the service can tell."""

    job: Job
    status: str = "pending"
    next_attempt_at: datetime | None = None
    lease_until: datetime | None = None
    last_error: str | None = None
    attempts: list[AttemptRow] = field(default_factory=list)

    def leased_job(self) -> Job:
        assert self.lease_until is not None
        return dataclasses.replace(
            self.job, attempts=len(self.attempts), lease_until=self.lease_until
        )


class FakeDeliveryStore:
    """`DeliveryStore` in a dict; refuses NUL in text as Postgres does (a content error)."""

    def __init__(self) -> None:
        self.rows: dict[UUID, StoredDelivery] = {}

    async def store_requests(
        self,
        requested: Sequence[DeliveryRequested],
        redeliver: Sequence[RedeliverRequested],
        *,
        now: datetime,
        lease_until: datetime,
    ) -> tuple[list[Job], list[bool]]:
        for request in requested:
            if any("\x00" in text for text in (request.event_id, request.event, request.body)):
                raise asyncpg.CharacterNotInRepertoireError("invalid byte sequence: 0x00")
        jobs = []
        taken = {(row.job.webhook_id, row.job.event_id) for row in self.rows.values()}
        for request in requested:
            job = Job(
                id=UUID(request.delivery_id),
                webhook_id=UUID(request.webhook_id),
                organization_id=UUID(request.organization_id),
                event_id=request.event_id,
                event=request.event,
                payload=request.body,
                attempts=0,
                lease_until=lease_until,
            )
            if job.id in self.rows or (job.webhook_id, job.event_id) in taken:
                continue
            taken.add((job.webhook_id, job.event_id))
            self.rows[job.id] = StoredDelivery(job, next_attempt_at=now, lease_until=lease_until)
            jobs.append(job)
        return jobs, [self._rearm(order, now) for order in redeliver]

    def _rearm(self, order: RedeliverRequested, now: datetime) -> bool:
        row = self.rows.get(UUID(order.delivery_id))
        if row is None or (str(row.job.webhook_id), str(row.job.organization_id)) != (
            order.webhook_id,
            order.organization_id,
        ):
            return False
        row.status, row.next_attempt_at = "pending", now
        return True

    async def claim_due(
        self, *, now: datetime, lease_until: datetime, limit: int, skip_webhooks: Sequence[UUID]
    ) -> list[Job]:
        due = sorted(
            (
                row
                for row in self.rows.values()
                if row.status == "pending"
                and row.next_attempt_at is not None
                and row.next_attempt_at <= now
                and (row.lease_until is None or row.lease_until <= now)
                and row.job.webhook_id not in skip_webhooks
            ),
            key=lambda row: row.next_attempt_at or now,
        )[:limit]
        for row in due:
            row.lease_until = lease_until
        return [row.leased_job() for row in due]

    async def renew_lease(self, job: Job, *, lease_until: datetime) -> datetime | None:
        row = self.rows.get(job.id)
        if (
            row is None
            or row.status != "pending"
            or row.lease_until != job.lease_until
            or len(row.attempts) != job.attempts
        ):
            return None
        row.lease_until = lease_until
        return lease_until

    async def release(self, ids: Sequence[UUID], *, due_at: datetime) -> None:
        for row in self._pending(ids):
            row.lease_until, row.next_attempt_at = None, due_at

    async def stop(self, ids: Sequence[UUID], *, reason: str, now: datetime) -> None:
        for row in self._pending(ids):
            row.status, row.last_error = "failed", reason
            row.next_attempt_at = row.lease_until = None

    def _pending(self, ids: Sequence[UUID]) -> list[StoredDelivery]:
        rows = (self.rows.get(delivery_id) for delivery_id in ids)
        return [row for row in rows if row is not None and row.status == "pending"]

    def apply(self, row: AttemptRow) -> bool:
        """Record an attempt as `record_attempts` does: only the delivery's next one."""
        stored = self.rows.get(row.delivery_id)
        if stored is None or len(stored.attempts) != row.attempt - 1:
            return False
        stored.attempts.append(row)
        stored.status, stored.next_attempt_at = row.status, row.next_attempt_at
        stored.lease_until, stored.last_error = None, row.error
        return True


class FakeAttemptLog:
    """`AttemptLog` writing straight into a `FakeDeliveryStore`; `rows` holds all it took."""

    def __init__(self, store: FakeDeliveryStore) -> None:
        self.store = store
        self.rows: list[AttemptRow] = []

    async def record(self, row: AttemptRow) -> None:
        self.rows.append(row)
        self.store.apply(row)


@dataclass(frozen=True)
class Post:
    url: str
    body: bytes
    headers: dict[str, str]


class FakePoster:
    """`WebhookPoster` answering from a table of url -> (status, headers, body); a url not
    in it refuses the connection. While `gate` is an unset event, posts wait on it (`held`)."""

    def __init__(self, policy: AddressPolicy | None = None, body_limit: int = 4096) -> None:
        self.policy = policy or AddressPolicy.build(allow_loopback=True, allowed_networks=[])
        self.body_limit = body_limit
        self.answers: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.posts: list[Post] = []
        self.gate: asyncio.Event | None = None
        self.held = 0  # posts waiting on the gate

    def answer(
        self, url: str, status: int, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> str:
        self.answers[url] = (status, headers or {}, body)
        return url

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> AttemptResult:
        started_at, t0 = datetime.now(UTC), time.perf_counter()
        refusal = self.policy.host_refusal(URL(url).host or "")
        if refusal is not None:
            return failed(
                Outcome.BLOCKED, guard_message(refusal), started_at=started_at, duration_ms=0
            )
        if self.gate is not None:
            self.held += 1
            try:
                await self.gate.wait()
            finally:
                self.held -= 1
        self.posts.append(Post(url, body, headers))
        if url not in self.answers:
            reason = f"ClientConnectorError: Cannot connect to host {URL(url).host}"
            return failed(Outcome.NETWORK_ERROR, reason, started_at=started_at, duration_ms=0)
        status, answer_headers, answer_body = self.answers[url]
        return answered(
            status,
            answer_headers,
            answer_body,
            started_at=started_at,
            duration_ms=int((time.perf_counter() - t0) * 1000),
            body_limit=self.body_limit,
            policy=self.policy,
        )


class FakeTargets:
    """`TargetLookup` over a dict the test fills (`put`)."""

    def __init__(self) -> None:
        self.targets: dict[UUID, Target] = {}

    def put(self, webhook_id: UUID, target: Target) -> None:
        self.targets[webhook_id] = target

    async def get(self, webhook_id: UUID) -> Target | None:
        return self.targets.get(webhook_id)

    def mark_disabled(self, webhook_id: UUID) -> None:
        target = self.targets.get(webhook_id)
        if target is not None:
            self.targets[webhook_id] = dataclasses.replace(target, enabled=False)
