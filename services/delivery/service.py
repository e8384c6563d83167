"""Delivery use cases: accept requests durably, attempt them, schedule and claim retries.

At-least-once end to end: a request is stored (idempotently) before its offset is committed;
an attempt is recorded after it is made, so a crash in between repeats it with the same
`webhook-id`. Every attempt runs inside the lanes: bounded overall and per webhook. A delivery
is attempted by one task at a time in a process, and only under a lease that covers the
attempt from its start (see `_hold_lease`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from uuid import UUID

import structlog
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.delivery.dependencies import AttemptLog, DeliveryStore, TargetLookup, WebhookPoster
from services.delivery.dispatcher import build_headers
from services.delivery.lanes import Lanes
from services.delivery.policy import (
    AttemptResult,
    Decision,
    Final,
    Outcome,
    decide,
    spill_delay,
)
from services.delivery.rows import AttemptRow, Job, Target
from services.delivery.sent_headers import recorded_headers
from services.delivery.settings import DeliverySettings
from shared.messages import (
    DeliveryRequested,
    DisableWebhook,
    RecoverRequested,
    RedeliverRequested,
)
from shared.tracing import (
    NO_TRACING,
    TRACEPARENT,
    Tracing,
    parent_from_text,
    traceparent_of,
    url_without_query,
)

log = structlog.get_logger(__name__)
# The stdlib logger `log` writes through (shared.logging): asked before a success's DEBUG line,
# so at INFO a success binds and drops no log line (8 us an attempt, timed).
_stdlib_log = logging.getLogger(__name__)

# Orders to the registry go out through this (the app wires a Kafka producer to it).
DisablePublisher = Callable[[DisableWebhook], Awaitable[None]]
# What the deliveries topic carries.
Request = DeliveryRequested | RedeliverRequested | RecoverRequested


class DeliveryMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.accepted = Counter(
            "roomhooks_deliveries_accepted_total", "Delivery requests stored.", registry=registry
        )
        self.attempts = Counter(
            "roomhooks_delivery_attempts_total",
            "Attempts made, by outcome.",
            ["outcome"],
            registry=registry,
        )
        self.finished = Counter(
            "roomhooks_deliveries_finished_total",
            "Deliveries that reached a final status.",
            ["status"],
            registry=registry,
        )
        self.attempt_seconds = Histogram(
            "roomhooks_delivery_attempt_seconds", "Attempt duration.", registry=registry
        )
        self.in_flight = Gauge(
            "roomhooks_delivery_admitted", "Deliveries admitted to lanes.", registry=registry
        )
        # Each label's child, looked up once (labels() took 1.2 us of every attempt, twice);
        # made on first use, so /metrics shows the outcomes seen, as before.
        self._attempts_by: dict[str, Counter] = {}
        self._finished_by: dict[str, Counter] = {}

    def attempted(self, outcome: str) -> None:
        _child(self._attempts_by, self.attempts, outcome).inc()

    def ended(self, status: str) -> None:
        _child(self._finished_by, self.finished, status).inc()


def _child(children: dict[str, Counter], counter: Counter, label: str) -> Counter:
    child = children.get(label)
    if child is None:
        child = children[label] = counter.labels(label)
    return child


class DeliveryService:
    """Accepts requests (idempotent, durable before their offsets are committed), attempts
    them in the lanes under a lease, records each attempt, claims due retries."""

    def __init__(
        self,
        *,
        store: DeliveryStore,
        dispatcher: WebhookPoster,
        targets: TargetLookup,
        lanes: Lanes,
        recorder: AttemptLog,
        disable: DisablePublisher,
        settings: DeliverySettings,
        clock: Callable[[], datetime],
        metrics: DeliveryMetrics,
        user_agent: str,
        tracing: Tracing = NO_TRACING,
    ) -> None:
        """With `tracing` on, each attempt is an HTTP client span of its delivery's trace
        (the traceparent stored with it), whichever replica makes it, however late."""
        self._tracing = tracing
        self._store = store
        self._dispatcher = dispatcher
        self._targets = targets
        self._lanes = lanes
        self._recorder = recorder
        self._disable = disable
        self._settings = settings
        self._clock = clock
        self._metrics = metrics
        self._user_agent = user_agent
        self._lease = timedelta(seconds=settings.lease_s)
        self._default_schedule = tuple(settings.retry_schedule)
        # An attempt starts only with this much of its lease left (the attempt's own time
        # limit and a margin); with less, it renews the lease first. At the default lease
        # (60 s) only an attempt that waited ~45 s in its lane pays that round trip.
        margin = min(5.0, (settings.lease_s - settings.timeout_s) / 2)
        self._lease_floor = timedelta(seconds=settings.timeout_s + margin)
        # Admitted attempts (running or waiting for a lane slot) and the job each one holds.
        self._tasks: dict[asyncio.Task[None], Job] = {}
        # Deliveries admitted here and not finished, with the lease we hold on each: one
        # claimed again while admitted (its lease ran out as it waited or ran) is not
        # attempted a second time; the new lease is the one its attempt holds.
        self._admitted_leases: dict[UUID, datetime] = {}
        # Shutting down: admitted deliveries not yet started are not started (see attempt).
        self._draining = False
        self._not_started: list[Job] = []
        self.wake_scheduler = asyncio.Event()
        # Set when a recovery job is ordered: the upkeep loop starts it at once.
        self.wake_upkeep = asyncio.Event()

    # --- requests from Kafka ---------------------------------------------------------------

    async def accept(
        self, messages: Sequence[Request], traces: Mapping[str, str] | None = None
    ) -> list[Job]:
        """Store a batch of requests durably; returns the new deliveries, leased to us.
        `traces`: the traceparent each delivery is stored with, by delivery id.

        Idempotent: a request seen before (same webhook and event), or a recovery job started
        before, stores nothing new.
        """
        now = self._clock()
        requested = [m for m in messages if isinstance(m, DeliveryRequested)]
        redeliver = [m for m in messages if isinstance(m, RedeliverRequested)]
        recover = [m for m in messages if isinstance(m, RecoverRequested)]
        jobs, found = await self._store.store_requests(
            requested,
            redeliver,
            now=now,
            lease_until=now + self._lease,
            recover=recover,
            traces=traces,
        )
        for order, rearmed in zip(redeliver, found, strict=True):
            log.info("delivery.redeliver", delivery_id=order.delivery_id, found=rearmed)
        for job in recover:
            log.info("delivery.recovery_ordered", job_id=job.job_id, webhook_id=job.webhook_id)
        if redeliver:
            self.wake_scheduler.set()
        if recover:
            self.wake_upkeep.set()
        self._metrics.accepted.inc(len(jobs))
        return jobs

    # --- attempts ----------------------------------------------------------------------------

    async def submit(self, jobs: Sequence[Job]) -> None:
        """Start attempts for leased jobs; what a full lane cannot take goes back to Postgres."""
        spilled: dict[datetime, list[Job]] = {}
        now = self._clock()
        for job in jobs:
            if job.id in self._admitted_leases:
                self._admitted_leases[job.id] = job.lease_until
                log.info("delivery.already_in_flight", delivery_id=str(job.id))
                continue
            if not self._lanes.try_admit(job.webhook_id):
                degraded = self._lanes.degraded(job.webhook_id)
                due_at = now + spill_delay(degraded=degraded, timeout_s=self._settings.timeout_s)
                spilled.setdefault(due_at, []).append(job)
                continue
            task = asyncio.create_task(
                self._lanes.run(job.webhook_id, lambda j=job: self.attempt(j))
            )
            self._tasks[task] = job
            self._admitted_leases[job.id] = job.lease_until
            task.add_done_callback(self._forget)
        self._metrics.in_flight.set(self._lanes.admitted)
        for due_at, released in spilled.items():
            await self._store.release(released, due_at=due_at)

    async def attempt(self, job: Job) -> None:
        """Attempt a leased delivery once, in its lane, and record the result; never raises
        (a crash is logged, and the lease brings the delivery back)."""
        if self._draining:  # its lane slot came after SIGTERM: leave it to be released
            self._not_started.append(job)
            return
        try:
            held = await self._hold_lease(job)
            if held is None:
                _bound(job).info("delivery.lease_lost", attempts=job.attempts)
                return
            job = held
            target = await self._targets.get(job.webhook_id)
            if target is None or not target.enabled:
                await self._set_aside(job, target, _bound(job))
                return
            number = job.attempts + 1
            result, sent = await self._send(job, target, number)
            decision = self._decide(target, number, result)
            await self._recorder.record(
                _attempt_row(job, number, result, decision.status, decision.next_attempt_at, sent)
            )
            self._observe(result, decision.status)
            # Successes are the hot path (a tenth of the CPU at full load when logged at
            # INFO): they are counted in /metrics and logged at DEBUG; anything else at INFO.
            success = result.outcome is Outcome.SUCCESS
            if not success or _stdlib_log.isEnabledFor(logging.DEBUG):
                bound = _bound(job)
                (bound.debug if success else bound.info)(
                    "delivery.attempted",
                    attempt=number,
                    outcome=result.outcome.value,
                    status_code=result.status_code,
                    status=decision.status.value,
                    duration_ms=result.duration_ms,
                )
            if decision.disable_webhook:
                await self._disable_webhook(job, _bound(job))
        except Exception:  # noqa: BLE001 - keep the lane going; the lease brings it back
            _bound(job).exception("delivery.attempt_crashed")

    async def _set_aside(
        self, job: Job, target: Target | None, bound: structlog.BoundLogger
    ) -> None:
        """Without a request: hold a delivery of a disabled webhook until it is enabled
        again; end one of a deleted webhook as failed."""
        if target is not None:
            await self._store.hold([job], now=self._clock())
            bound.info("delivery.held", attempts=job.attempts)
            return
        await self._store.stop([job], reason="webhook deleted", now=self._clock())
        if job.order_key is not None:
            self.wake_scheduler.set()  # its room's next delivery was started, due now
        self._metrics.ended("failed")
        bound.info("delivery.stopped", reason="webhook deleted")

    async def _send(
        self, job: Job, target: Target, number: int
    ) -> tuple[AttemptResult, dict[str, str] | None]:
        """The signed POST of attempt `number` and its headers as recorded (`sent_headers`);
        without a secret, a failed attempt and no request (nothing to sign with)."""
        if target.secret is None:
            failed = AttemptResult(
                Outcome.SECRET_UNREADABLE, self._clock(), 0, error=target.secret_error
            )
            return failed, None
        body = job.payload.encode()
        headers = build_headers(
            secret=target.secret,
            body=body,
            delivery_id=str(job.id),
            event=job.event,
            attempt=number,
            timestamp=int(self._clock().timestamp()),
            user_agent=self._user_agent,
            previous=target.previous_secret,
            custom=target.headers,
        )
        if self._tracing.enabled:
            result = await self._traced_post(job, target, number, body, headers)
        else:
            result = await self._dispatcher.post(target.url, body, headers)
        self._lanes.report(job.webhook_id, answered=result.outcome is not Outcome.NETWORK_ERROR)
        return result, recorded_headers(headers, custom_names=(name for name, _ in target.headers))

    async def _traced_post(
        self, job: Job, target: Target, number: int, body: bytes, headers: dict[str, str]
    ) -> AttemptResult:
        """The POST as an HTTP client span of the delivery's trace (a new trace when it was
        stored without one); with the span's `traceparent` in `headers` when the webhook asks
        for it (`send_traceparent`)."""
        span = self._tracing.start(
            "POST",
            parent=parent_from_text(job.traceparent),
            kind=SpanKind.CLIENT,
            attributes={
                "http.request.method": "POST",
                "url.full": url_without_query(target.url),
                "roomhooks.webhook_id": str(job.webhook_id),
                "roomhooks.delivery_id": str(job.id),
                "roomhooks.attempt": number,
            },
        )
        if target.send_traceparent and (traceparent := traceparent_of(span)) is not None:
            # The webhook asked for it: the receiver continues this trace. Ours replaces a
            # custom header of that name; it is recorded with the attempt as sent.
            for name in [n for n in headers if n.lower() == TRACEPARENT]:
                del headers[name]
            headers[TRACEPARENT] = traceparent
        try:
            result = await self._dispatcher.post(target.url, body, headers)
        except BaseException as exc:
            span.record_exception(exc)
            span.set_status(StatusCode.ERROR, type(exc).__name__)
            span.end()
            raise
        if result.status_code is not None:
            span.set_attribute("http.response.status_code", result.status_code)
        span.set_attribute("roomhooks.outcome", result.outcome.value)
        span.set_attribute("roomhooks.duration_ms", result.duration_ms)
        if result.outcome is not Outcome.SUCCESS:
            span.set_status(StatusCode.ERROR, (result.error or result.outcome.value)[:300])
        span.end()
        return result

    def _decide(self, target: Target, number: int, result: AttemptResult) -> Decision:
        schedule = (
            target.retry_schedule
            if target.retry_schedule is not None  # [] means: never retry
            else self._default_schedule
        )
        return decide(
            number,
            result,
            now=self._clock(),
            schedule=schedule,
            retry_after_max=self._settings.retry_after_max_s,
            jitter=random.random(),
        )

    async def _disable_webhook(self, job: Job, bound: structlog.BoundLogger) -> None:
        """The endpoint answered 410 Gone: stop sending now, and tell the registry."""
        self._targets.mark_disabled(job.webhook_id)
        await self._disable(
            DisableWebhook(
                webhook_id=str(job.webhook_id),
                organization_id=str(job.organization_id),
                reason="the endpoint answered 410 Gone",
                requested_at=self._clock(),
            )
        )
        bound.warning("delivery.webhook_disabled", status_code=410)

    async def _hold_lease(self, job: Job) -> Job | None:
        """`job` with a lease that outlasts the attempt about to start, or None when the
        delivery is no longer ours (claimed elsewhere after our lease ran out, or finished).

        A lease is taken at claim time, but an attempt may wait in its lane (behind a slow
        endpoint) for longer than the lease: then it is renewed here, fenced on the lease we
        hold, so the lease starts when the attempt starts. Fresh claims (the hot path) have
        their whole lease left and cost no round trip.
        """
        held = self._admitted_leases.get(job.id, job.lease_until)
        if held != job.lease_until:  # claimed again here meanwhile: that lease is ours now
            job = dataclasses.replace(job, lease_until=held)
        if held - self._clock() >= self._lease_floor:
            return job
        renewed = await self._store.renew_lease(job, lease_until=self._clock() + self._lease)
        if renewed is None:
            return None
        self._admitted_leases[job.id] = renewed
        return dataclasses.replace(job, lease_until=renewed)

    def _observe(self, result: AttemptResult, status: Final) -> None:
        self._metrics.attempted(result.outcome.value)
        self._metrics.attempt_seconds.observe(result.duration_ms / 1000)
        if status is not Final.PENDING:
            self._metrics.ended(status.value)

    # --- retries --------------------------------------------------------------------------

    async def claim_due(self) -> int:
        """Claim due deliveries up to the room the lanes have; returns how many."""
        room = min(self._lanes.room(), self._settings.claim_batch)
        if room == 0:
            return 0
        now = self._clock()
        jobs = await self._store.claim_due(
            now=now,
            lease_until=now + self._lease,
            limit=room,
            skip_webhooks=self._lanes.saturated(),
        )
        await self.submit(jobs)
        return len(jobs)

    def _forget(self, task: asyncio.Task[None]) -> None:
        job = self._tasks.pop(task, None)
        if job is not None:
            self._admitted_leases.pop(job.id, None)

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def start_draining(self) -> None:
        """Shutdown: from now on an admitted delivery whose turn comes is not attempted; it
        waits for `release_in_flight` (running attempts go on)."""
        self._draining = True

    async def finish_in_flight(self, timeout_s: float) -> int:
        """Shutdown: let running attempts end; returns how many still ran after `timeout_s`."""
        self.start_draining()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)
        return len(self._tasks)

    async def release_in_flight(self) -> list[UUID]:
        """Shutdown, after `finish_in_flight`: cancel the attempts still running and give
        them back to Postgres, with the admitted ones never started, due now: another
        replica, or the next start, attempts them (the same `webhook-id`). Returns the
        released ids.

        If Postgres cannot be reached, their leases run out instead (`lease_s`): later, but
        nothing is lost either way.
        """
        tasks = dict(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        jobs = [*self._not_started, *tasks.values()]
        if jobs:
            await self._store.release(jobs, due_at=self._clock())
        return [job.id for job in jobs]


def _bound(job: Job) -> structlog.BoundLogger:
    """The log of one delivery's attempt; bound when a line is written, not before."""
    return log.bind(delivery_id=str(job.id), webhook_id=str(job.webhook_id))


def _attempt_row(
    job: Job,
    number: int,
    result: AttemptResult,
    status: Final,
    next_at: datetime | None,
    sent: dict[str, str] | None,
) -> AttemptRow:
    error = result.error
    if error is None and result.outcome is Outcome.HTTP_ERROR:
        error = f"HTTP {result.status_code}"
    return AttemptRow(
        delivery_id=job.id,
        delivery_created_at=job.created_at,
        attempt=number,
        started_at=result.started_at,
        duration_ms=result.duration_ms,
        status_code=result.status_code,
        error=error,
        response_body=result.response_body,
        status=status.value,
        next_attempt_at=next_at,
        request_headers=sent,
        ordered=job.order_key is not None and status is not Final.PENDING,
    )
