"""Parts 1, 4 and 5: events in through Kafka, signed POSTs out, attempts in Postgres.

The workload: 10 accounts with 10 webhooks each, every webhook on `participant.joined` in its
own room, so each event makes exactly one delivery and a publish rate is a delivery rate. For
head-of-line isolation, 10 more webhooks (one per account, own rooms) point at an endpoint that
accepts the connection and never answers; events go round-robin over all 110 rooms.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from shared.kafka import Topics
from tests.bench.load import EventPublisher, Target
from tests.bench.profiling import SERVICES, Profiler
from tests.bench.receiver import ReceiverClient
from tests.bench.stack import Account, Stack

ACCOUNTS = 10
WEBHOOKS_PER_ACCOUNT = 10
INDEX_TIMEOUT_S = 30.0
INDEX_ENABLED = 'roomhooks_fanout_index_webhooks{state="enabled"}'
DRAIN_TIMEOUT_S = 30.0
# A deleted webhook's retries end when they come due (the last one 30 s after its attempt).
SETTLE_TIMEOUT_S = 60.0


@dataclass
class Workload:
    accounts: list[Account]
    targets: list[Target]
    secrets: dict[str, str] = field(default_factory=dict)
    hang_targets: list[Target] = field(default_factory=list)
    hang_webhooks: list[tuple[Account, str]] = field(default_factory=list)


async def create_workload(stack: Stack) -> Workload:
    assert stack.receiver is not None
    accounts = [await stack.create_account(f"bench-{a}") for a in range(ACCOUNTS)]
    targets, secrets = [], {}
    for a, account in enumerate(accounts):
        for w in range(WEBHOOKS_PER_ACCOUNT):
            room = f"room-{a}-{w}"
            webhook = await stack.create_webhook(
                account,
                {
                    "url": stack.receiver.hook_url(f"a{a}w{w}"),
                    "events": ["participant.joined"],
                    "roomId": room,
                },
            )
            targets.append(Target(account.id, room))
            secrets[webhook["id"]] = webhook["secret"]
    await wait_for_index(stack, len(targets))
    return Workload(accounts, targets, secrets)


async def add_hanging_webhooks(stack: Stack, workload: Workload) -> None:
    assert stack.receiver is not None
    for a, account in enumerate(workload.accounts):
        room = f"room-{a}-hang"
        webhook = await stack.create_webhook(
            account,
            {
                "url": stack.receiver.hang_url(f"a{a}"),
                "events": ["participant.joined"],
                "roomId": room,
            },
        )
        workload.hang_targets.append(Target(account.id, room, healthy=False))
        workload.hang_webhooks.append((account, webhook["id"]))
    await wait_for_index(stack, len(workload.targets) + len(workload.hang_targets))


async def remove_hanging_webhooks(stack: Stack, workload: Workload) -> float:
    """Delete them, then wait (at most SETTLE_TIMEOUT_S) until delivery has ended all their
    pending deliveries, so a clean run measured next does not pay for that clean-up.
    Returns the seconds waited."""
    assert stack.pool is not None
    ids = [webhook_id for _account, webhook_id in workload.hang_webhooks]
    for account, webhook_id in workload.hang_webhooks:
        await stack.delete_webhook(account, webhook_id)
    workload.hang_webhooks.clear()
    workload.hang_targets.clear()
    started = time.monotonic()
    while time.monotonic() - started < SETTLE_TIMEOUT_S:
        async with stack.pool.acquire() as conn:
            pending = await conn.fetchval(
                "SELECT count(*) FROM delivery.deliveries"
                " WHERE webhook_id = ANY($1::uuid[]) AND status = 'pending'",
                ids,
            )
        if pending == 0:
            break
        await asyncio.sleep(0.5)
    return time.monotonic() - started


async def enabled_in_index(stack: Stack) -> int:
    """The enabled webhooks fanout's index holds now."""
    return int((await stack.metrics("fanout")).get(INDEX_ENABLED, 0))


async def wait_for_index(stack: Stack, enabled: int) -> None:
    """Until fanout's index holds `enabled` enabled webhooks (the registry relayed them)."""
    deadline = time.monotonic() + INDEX_TIMEOUT_S
    while (held := await enabled_in_index(stack)) < enabled:
        if time.monotonic() > deadline:
            raise TimeoutError(f"fanout holds {held:.0f} enabled webhooks, wanted {enabled}")
        await asyncio.sleep(0.2)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class ReceivedCounter:
    """The receiver's `/hook/` count, polled in the background every 50 ms."""

    def __init__(self, receiver: ReceiverClient) -> None:
        self._receiver = receiver
        self.value = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ReceivedCounter:
        self.value = await self._receiver.hooks()
        self._task = asyncio.create_task(self._poll())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _poll(self) -> None:
        while True:
            self.value = await self._receiver.hooks()
            await asyncio.sleep(0.05)

    async def settle(self, wanted: int, *, timeout_s: float = DRAIN_TIMEOUT_S) -> int:
        """Wait until `wanted` arrived, or nothing arrived for 3 s, or `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        last, last_change = self.value, time.monotonic()
        while self.value < wanted and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            if self.value != last:
                last, last_change = self.value, time.monotonic()
            elif time.monotonic() - last_change > 3:
                break
        return self.value


async def recorded_success(stack: Stack, delivery_ids: set[str]) -> int:
    """How many of these deliveries Postgres holds as `success`; waits until the count is
    stable (the recorder writes attempts in batches)."""
    assert stack.pool is not None
    ids = [i for i in delivery_ids if len(i) == 36]
    previous, deadline = -1, time.monotonic() + 15
    while True:
        async with stack.pool.acquire() as conn:
            count = await conn.fetchval(
                "SELECT count(*) FROM delivery.deliveries"
                " WHERE id = ANY($1::uuid[]) AND status = 'success'",
                ids,
            )
        if count == previous or count == len(ids) or time.monotonic() > deadline:
            return int(count)
        previous = count
        await asyncio.sleep(1.0)


async def success_in_window(stack: Stack, t0: float, t1: float) -> int:
    """Deliveries whose successful attempt started in [t0, t1) (service clock)."""
    assert stack.pool is not None
    async with stack.pool.acquire() as conn:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM delivery.deliveries WHERE status = 'success'"
                " AND last_attempt_at >= to_timestamp($1) AND last_attempt_at < to_timestamp($2)",
                t0,
                t1,
            )
        )


async def throughput_run(
    stack: Stack,
    workload: Workload,
    *,
    warmup_s: float,
    duration_s: float,
    lead: int,
    progress: Callable[[str], None],
    label: str,
    profiler: Profiler | None = None,
    fanout: int = 1,
) -> dict:
    """Publish at full speed; count deliveries that reached the receiver inside the window and
    are recorded `success` in Postgres. `fanout`: the deliveries each event makes (the lead
    is counted in events)."""
    assert stack.receiver is not None
    receiver = stack.receiver
    targets = [*workload.targets, *workload.hang_targets]
    topic = Topics.from_settings(stack.kafka_settings()).events
    stop = asyncio.Event()
    meter = stack.cpu_meter(bench_pid=os.getpid())
    async with (
        ReceivedCounter(receiver) as received,
        EventPublisher(stack.kafka_settings(), topic, linger_ms=10) as publisher,
    ):
        base = received.value
        publishing = asyncio.create_task(
            publisher.saturate(
                targets, received=lambda: (received.value - base) // fanout, lead=lead, stop=stop
            )
        )
        try:
            await _tick(publishing, warmup_s, progress, lambda s: f"{label} warm-up {s:.0f} s")
            meter.start()
            if profiler is not None:
                profiler.start(_service_pids(stack), duration_s)
            t0 = await receiver.track_start()
            start_count = received.value

            def status(s: float) -> str:
                rate = (received.value - start_count) / max(s, 1e-9)
                return f"{label} {s:.0f}/{duration_s:.0f} s, {rate:,.0f} deliveries/s"

            await _tick(publishing, duration_s, progress, status)
            t1, tracked = await receiver.track_stop()
            cpu = meter.stop()
        except BaseException:
            if profiler is not None:
                profiler.kill()
            raise
        finally:
            stop.set()
            await publishing
        progress(f"{label}: draining")
        await received.settle(base + publisher.published.healthy * fanout)
        drained = received.value - base
    window = t1 - t0
    ids = {i for i in tracked.delivery_ids if i}
    success = await recorded_success(stack, ids)
    pg_window = await success_in_window(stack, t0, t1)
    profile = await profiler.finish() if profiler is not None else None
    return {
        "profile": profile,
        "per_s": success / window,
        "window_s": window,
        "received_in_window": len(tracked.delivery_ids),
        "received_per_s": len(tracked.delivery_ids) / window,
        "distinct_received": len(ids),
        "recorded_success_of_received": success,
        "pg_success_attempted_in_window_per_s": pg_window / window,
        "published_events": publisher.published.events,
        "published_healthy": publisher.published.healthy,
        "received_after_drain": drained,
        "cpu_percent": cpu,
    }


def _service_pids(stack: Stack) -> dict[str, int]:
    found = {name: stack.processes.get(name) for name in SERVICES}
    return {name: child.pid for name, child in found.items() if child is not None}


async def latency_run(
    stack: Stack,
    workload: Workload,
    *,
    rate: float,
    warmup_s: float,
    duration_s: float,
    progress: Callable[[str], None],
) -> dict:
    """Publish `rate` events/s; publish-to-receipt latency of the events sent after warm-up."""
    assert stack.receiver is not None
    receiver = stack.receiver
    topic = Topics.from_settings(stack.kafka_settings()).events
    meter = stack.cpu_meter(bench_pid=os.getpid())
    async with (
        ReceivedCounter(receiver) as received,
        EventPublisher(stack.kafka_settings(), topic, linger_ms=5) as publisher,
    ):
        base = received.value
        await receiver.track_start()
        meter.start()
        publishing = asyncio.create_task(
            publisher.at_rate(workload.targets, rate=rate, duration_s=warmup_s + duration_s)
        )

        def status(s: float) -> str:
            return f"{rate:,.0f}/s {s:.0f}/{warmup_s + duration_s:.0f} s"

        await _tick(publishing, warmup_s + duration_s + 60, progress, status)
        first, last = await publishing
        cpu = meter.stop()
        progress(f"{rate:,.0f}/s: draining")
        await received.settle(base + publisher.published.healthy)
        _t, tracked = await receiver.track_stop()
    window_from = first + warmup_s
    latencies = tracked.latencies_ms(sent_from=window_from, sent_until=last + 1)
    sent_in_window = round((last - window_from) * rate)
    result: dict = {
        "rate": rate,
        "published": publisher.published.events,
        "achieved_publish_rate": publisher.published.events / max(last - first, 1e-9),
        "samples": len(latencies),
        "sent_in_window": sent_in_window,
        "cpu_percent": cpu,
    }
    if latencies:
        result |= {
            "p50_ms": percentile(latencies, 50),
            "p95_ms": percentile(latencies, 95),
            "p99_ms": percentile(latencies, 99),
            "max_ms": max(latencies),
            "mean_ms": statistics.fmean(latencies),
            "series": _series(tracked.sent_us, tracked.received_at, window_from),
        }
    return result


def _series(sent_us: list[int], received_at: list[float], origin: float) -> list[list[float]]:
    """(seconds since the window opened, latency ms) per sample, thinned to ≤ 5,000 points."""
    pairs = [
        [round(s / 1e6 - origin, 3), round((r * 1e6 - s) / 1000, 2)]
        for s, r in zip(sent_us, received_at, strict=True)
        if s >= 0
    ]
    pairs.sort()
    step = max(1, len(pairs) // 5000)
    return pairs[::step]


async def _tick(
    task: asyncio.Task, seconds: float, progress: Callable[[str], None], text: Callable
) -> None:
    """Sleep `seconds` (less if `task` ends), updating the progress line every second; a
    failed `task` raises here."""
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < seconds:
        if task.done():
            if task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
            return
        progress(text(elapsed))
        await asyncio.wait({task}, timeout=min(1.0, seconds - elapsed))
