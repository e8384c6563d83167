"""In-memory fakes of what `DeliveryService` depends on (services/delivery/dependencies.py)
and of what its upkeep depends on (`StaleWebhooks`, services/delivery/upkeep.py).

Each passes the contract suite its real adapter passes (tests/integration/
test_delivery_contracts.py, test_delivery_stale_webhooks_contract.py), so a unit test on
these fakes says what the service does on Postgres and HTTP.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
from prometheus_client import CollectorRegistry
from yarl import URL

from services.delivery.answers import answered, failed
from services.delivery.health_store import StaleWebhook
from services.delivery.lanes import Lanes
from services.delivery.policy import AttemptResult, Outcome
from services.delivery.recoveries import Recovery
from services.delivery.rows import AttemptRow, Job, Target
from services.delivery.service import DeliveryMetrics, DeliveryService
from services.delivery.settings import DeliverySettings
from services.delivery.upkeep import AutoDisable, Upkeep
from shared.messages import DeliveryRequested, DisableWebhook, RecoverRequested, RedeliverRequested
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
    created_at: datetime | None = None

    @property
    def held(self) -> bool:
        return self.status == "pending" and self.next_attempt_at is None

    @property
    def order(self) -> tuple[datetime, UUID]:
        assert self.created_at is not None
        return self.created_at, self.job.id

    def leased_job(self) -> Job:
        assert self.lease_until is not None
        return dataclasses.replace(
            self.job, attempts=len(self.attempts), lease_until=self.lease_until
        )


@dataclass
class FakeRecovery:
    """A row of delivery.recoveries and its items (delivery id -> [attempts before, attempted])."""

    recovery: Recovery
    status: str = "running"
    error: str | None = None
    items: dict[UUID, list] = field(default_factory=dict)


class FakeDeliveryStore:
    """`DeliveryStore` and `UpkeepStore` in dicts; refuses NUL in text as Postgres does (a
    content error). A delivery is found by (id, created_at), as in Postgres; rows are keyed
    by id, so a request with a stored id is never stored again (Postgres would store one
    created at another instant: a case no contract relies on)."""

    def __init__(self) -> None:
        self.rows: dict[UUID, StoredDelivery] = {}
        self.recoveries: dict[UUID, FakeRecovery] = {}
        self._turns: dict[UUID, asyncio.Lock] = {}

    async def store_requests(
        self,
        requested: Sequence[DeliveryRequested],
        redeliver: Sequence[RedeliverRequested],
        *,
        now: datetime,
        lease_until: datetime,
        recover: Sequence[RecoverRequested] = (),
        traces: Mapping[str, str] | None = None,
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
                created_at=request.created_at,
                traceparent=(traces or {}).get(request.delivery_id),
            )
            if job.id in self.rows or (job.webhook_id, job.event_id) in taken:
                continue
            taken.add((job.webhook_id, job.event_id))
            self.rows[job.id] = StoredDelivery(
                job, next_attempt_at=now, lease_until=lease_until, created_at=request.created_at
            )
            jobs.append(job)
        for order in recover:
            self.recoveries.setdefault(UUID(order.job_id), _started(order))
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
            # The longest claimable first: the later of due time and a lease run out.
            key=lambda row: max(filter(None, (row.next_attempt_at, row.lease_until))),
        )[:limit]
        for row in due:
            row.lease_until = lease_until
        return [row.leased_job() for row in due]

    async def renew_lease(self, job: Job, *, lease_until: datetime) -> datetime | None:
        row = self._found(job.id, job.created_at)
        if (
            row is None
            or row.status != "pending"
            or row.lease_until != job.lease_until
            or len(row.attempts) != job.attempts
        ):
            return None
        row.lease_until = lease_until
        return lease_until

    async def release(self, jobs: Sequence[Job], *, due_at: datetime) -> None:
        for row in self._pending(jobs):
            row.lease_until, row.next_attempt_at = None, due_at

    async def stop(self, jobs: Sequence[Job], *, reason: str, now: datetime) -> None:
        for row in self._pending(jobs):
            row.status, row.last_error = "failed", reason
            row.next_attempt_at = row.lease_until = None

    async def hold(self, jobs: Sequence[Job], *, now: datetime) -> None:
        for row in self._pending(jobs):
            row.next_attempt_at = row.lease_until = None

    # --- UpkeepStore ---

    async def held_webhooks(self, *, after: UUID | None, limit: int) -> list[UUID]:
        held = {row.job.webhook_id for row in self.rows.values() if row.held}
        return sorted(w for w in held if after is None or w > after)[:limit]

    async def resume_held(self, webhook_id: UUID, *, now: datetime, limit: int) -> int:
        rows = sorted(
            (r for r in self.rows.values() if r.held and r.job.webhook_id == webhook_id),
            key=lambda r: r.order,
        )[:limit]
        _due_in_order(rows, now)
        return len(rows)

    async def fail_held(self, webhook_id: UUID, *, reason: str, now: datetime, limit: int) -> int:
        rows = [r for r in self.rows.values() if r.held and r.job.webhook_id == webhook_id]
        for row in rows[:limit]:
            row.status, row.last_error = "failed", reason
        return len(rows[:limit])

    async def running_recoveries(self, *, limit: int) -> list[UUID]:
        running = [r for r in self.recoveries.values() if r.status == "running"]
        return [r.recovery.job_id for r in running][:limit]

    @asynccontextmanager
    async def recovery_turn(self, job_id: UUID) -> AsyncIterator[FakeRecoveryTurn | None]:
        found = self.recoveries.get(job_id)
        lock = self._turns.setdefault(job_id, asyncio.Lock())
        if found is None or found.status != "running" or lock.locked():
            yield None
            return
        async with lock:
            before = (copy.deepcopy(found), copy.deepcopy(self.rows))
            try:
                yield FakeRecoveryTurn(self, found)
            except BaseException:
                self.recoveries[job_id], self.rows = before
                raise

    def _found(self, delivery_id: UUID, created_at: datetime) -> StoredDelivery | None:
        row = self.rows.get(delivery_id)
        return row if row is not None and row.created_at == created_at else None

    def _pending(self, jobs: Sequence[Job]) -> list[StoredDelivery]:
        rows = (self._found(job.id, job.created_at) for job in jobs)
        return [row for row in rows if row is not None and row.status == "pending"]

    def apply(self, row: AttemptRow) -> bool:
        """Record an attempt as `record_attempts` does: only the delivery's next one."""
        stored = self._found(row.delivery_id, row.delivery_created_at)
        if stored is None or len(stored.attempts) != row.attempt - 1:
            return False
        stored.attempts.append(row)
        stored.status, stored.next_attempt_at = row.status, row.next_attempt_at
        stored.lease_until, stored.last_error = None, row.error
        return True


def _started(order: RecoverRequested) -> FakeRecovery:
    recovery = Recovery(
        job_id=UUID(order.job_id),
        webhook_id=UUID(order.webhook_id),
        organization_id=UUID(order.organization_id),
        since=order.since,
        until=order.until,
        marked=0,
        done=0,
        exhausted=False,
        after_created_at=None,
        after_id=None,
    )
    return FakeRecovery(recovery)


def _due_in_order(rows: Sequence[StoredDelivery], now: datetime) -> None:
    """Pending, unleased and due a microsecond apart from `now`, as the rows are ordered."""
    for rank, row in enumerate(rows, start=1):
        row.status, row.lease_until = "pending", None
        row.next_attempt_at = now + timedelta(microseconds=rank)


class FakeRecoveryTurn:
    """`RecoveryTurn` over a `FakeDeliveryStore`'s rows."""

    def __init__(self, store: FakeDeliveryStore, found: FakeRecovery) -> None:
        self._store = store
        self._found = found

    @property
    def recovery(self) -> Recovery:
        return self._found.recovery

    async def settle(self, *, now: datetime) -> Recovery:
        settled = 0
        for delivery_id, item in self._found.items.items():
            row = self._store.rows.get(delivery_id)
            if not item[1] and (row is None or len(row.attempts) > item[0]):
                item[1], settled = True, settled + 1
        self._set(done=self.recovery.done + settled)
        return self.recovery

    async def mark(self, *, limit: int, now: datetime) -> int:
        r = self.recovery
        after = (r.after_created_at, r.after_id) if r.after_created_at else None
        rows = sorted(
            (
                row
                for row in self._store.rows.values()
                if row.job.webhook_id == r.webhook_id
                and row.status == "failed"
                and r.since <= row.order[0] < r.until
                and (after is None or row.order > after)
            ),
            key=lambda row: row.order,
        )[:limit]
        _due_in_order(rows, now)
        for row in rows:
            self._found.items[row.job.id] = [len(row.attempts), False]
        last = rows[-1].order if rows else (r.after_created_at, r.after_id)
        self._set(
            marked=r.marked + len(rows),
            exhausted=not rows,
            after_created_at=last[0],
            after_id=last[1],
        )
        return len(rows)

    async def finish(self, status: str, *, error: str | None, now: datetime) -> None:
        self._found.status, self._found.error = status, error

    def _set(self, **changes: object) -> None:
        self._found.recovery = dataclasses.replace(self._found.recovery, **changes)  # type: ignore[arg-type]


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


@dataclass
class FakeHealth:
    """A row of delivery.webhook_health, as far as auto-disable reads it."""

    updated_at: datetime
    last_success_at: datetime | None = None
    last_gave_up_at: datetime | None = None
    last_error: str | None = None
    disable_sent_at: datetime | None = None


@dataclass(frozen=True)
class FakeRegistered:
    """A row of registry.webhooks, as far as auto-disable reads it."""

    organization_id: UUID
    enabled: bool
    created_at: datetime


class FakeStaleWebhooks:
    """`StaleWebhooks` over health rows and registry rows the test fills (`register`,
    `put_health`); a webhook without a registry row is deleted. A turn holds what it took
    until it ends, and notes it ordered only when it ends without raising."""

    def __init__(self) -> None:
        self.health: dict[UUID, FakeHealth] = {}
        self.webhooks: dict[UUID, FakeRegistered] = {}
        self._held: set[UUID] = set()

    def register(
        self, webhook_id: UUID, organization_id: UUID, *, enabled: bool, created_at: datetime
    ) -> None:
        self.webhooks[webhook_id] = FakeRegistered(organization_id, enabled, created_at)

    def put_health(self, webhook_id: UUID, *, updated_at: datetime, **fields: Any) -> None:
        """Set these columns of the webhook's row (made when missing), as an upsert would."""
        row = self.health.setdefault(webhook_id, FakeHealth(updated_at))
        for name, value in {"updated_at": updated_at, **fields}.items():
            setattr(row, name, value)

    @asynccontextmanager
    async def stale_turn(
        self, *, stale_before: datetime, limit: int, now: datetime
    ) -> AsyncIterator[list[StaleWebhook]]:
        candidates = (self._stale(webhook_id) for webhook_id in self.health)
        stale = sorted(
            (
                s
                for s in candidates
                if s is not None and s.webhook_id not in self._held and s.since < stale_before
            ),
            key=lambda s: s.last_gave_up_at,
        )[:limit]
        taken = {s.webhook_id for s in stale}
        self._held |= taken
        try:
            yield stale
            for webhook_id in taken:
                self.health[webhook_id].disable_sent_at = now
        finally:
            self._held -= taken

    def _stale(self, webhook_id: UUID) -> StaleWebhook | None:
        """The webhook when it failed for good since its last success and its last order."""
        h = self.health[webhook_id]
        gave_up = h.last_gave_up_at
        if gave_up is None or any(
            at is not None and gave_up <= at for at in (h.last_success_at, h.disable_sent_at)
        ):
            return None
        registered = self.webhooks.get(webhook_id)
        created_at = registered.created_at if registered else None
        return StaleWebhook(
            webhook_id,
            registered.organization_id if registered else None,
            registered.enabled if registered else False,
            h.last_success_at or created_at or h.updated_at,
            gave_up,
            h.last_error,
        )


class FakeClock:
    """A clock the test moves (`advance`)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class FakeDelivery:
    """`DeliveryService` and `Upkeep` over one set of fakes; `disabled` holds the orders to
    disable a webhook (410) the service sent."""

    service: DeliveryService
    upkeep: Upkeep
    store: FakeDeliveryStore
    attempts: FakeAttemptLog
    poster: FakePoster
    targets: FakeTargets
    clock: FakeClock
    disabled: list[DisableWebhook]  # by a 410 or by auto-disable
    stale: FakeStaleWebhooks

    async def attempt_due(self) -> list[UUID]:
        """Claim every delivery due a moment from now (as the scheduler would, after the
        upkeep made them due a microsecond apart) and attempt each in turn; their ids, in
        claim order."""
        now = self.clock.now + timedelta(milliseconds=1)
        jobs = await self.store.claim_due(
            now=now, lease_until=now + timedelta(seconds=10), limit=10_000, skip_webhooks=[]
        )
        for job in jobs:
            await self.service.attempt(job)
        return [job.id for job in jobs]


def fake_delivery(
    now: datetime,
    *,
    upkeep_batch: int = 500,
    metrics: CollectorRegistry | None = None,
    **settings: Any,
) -> FakeDelivery:
    """The delivery service and its upkeep (auto-disable included) on the fakes, wired as
    services/delivery/app.py wires them; `metrics` to read what it counts."""
    store, poster, targets, clock = FakeDeliveryStore(), FakePoster(), FakeTargets(), FakeClock(now)
    stale = FakeStaleWebhooks()
    attempts = FakeAttemptLog(store)
    s = DeliverySettings(
        **{"retry_schedule": [1, 5], "timeout_s": 2, "lease_s": 10, **settings},
        upkeep_batch=upkeep_batch,
    )
    disabled: list[DisableWebhook] = []

    async def disable(order: DisableWebhook) -> None:
        disabled.append(order)

    service = DeliveryService(
        store=store,
        dispatcher=poster,
        targets=targets,
        lanes=Lanes(
            max_in_flight=s.max_in_flight,
            per_webhook_concurrency=s.per_webhook_concurrency,
            per_webhook_backlog=s.per_webhook_backlog,
            max_admitted=s.max_in_flight * 8,
        ),
        recorder=attempts,
        disable=disable,
        settings=s,
        clock=clock,
        metrics=DeliveryMetrics(metrics or CollectorRegistry()),
        user_agent="roomhooks/test",
    )
    upkeep = Upkeep(
        store=store,
        targets=targets,
        clock=clock,
        batch=upkeep_batch,
        wake=service.wake_upkeep,
        due=service.wake_scheduler,
        auto_disable=AutoDisable(
            store=stale,
            disable=disable,
            clock=clock,
            disable_after_s=s.disable_after_s,
            batch=upkeep_batch,
        ),
    )
    return FakeDelivery(service, upkeep, store, attempts, poster, targets, clock, disabled, stale)
