"""Part 1's second figure: the delivery service alone, on delivery requests already waiting.

Part 1 measures the whole path (publisher, broker, fanout, broker, delivery, receiver), so
its figure cannot say how much of the machine delivery's own code needs. Here a second
`python -m services.delivery`, on a topic namespace of its own of the same broker and the
same database, starts on a backlog of delivery requests written before it starts (as fanout
writes them, round-robin over part 1's 100 webhooks, so the same endpoints, secrets and
bodies): no events published, no fanout at work, and the broker only serving fetches and
taking commits. Counted as part 1 counts: the receiver tracks the deliveries that reach it
between 5 % and 95 % of the backlog, and the figure is those Postgres holds as `success`,
per second. The CPU of every process over that window says what each delivery cost. The
namespace's topics are deleted at the end, so the parts after it do not pay for its batches.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from shared.kafka import JSON_HEADERS, Topics, ensure_topics, make_producer
from shared.messages import DeliveryRequested, delivery_id_for
from tests.bench.baselines import delivery_body
from tests.bench.pipeline import ReceivedCounter, Workload, recorded_success
from tests.bench.profiling import Profiler
from tests.bench.stack import Stack, StackError

NAMESPACE = "benchbacklog"
INSTANCE = "delivery_backlog"
# Records handed to the producer before their acks are awaited.
CHUNK = 1000
# py-spy's window (with --profile), from the start of the measured one: inside it at any
# rate this part has seen (the default backlog's window is ~25 s at 3,000/s).
PROFILE_S = 10.0


def backlog_requests(workload: Workload, count: int, *, now: datetime) -> list[DeliveryRequested]:
    """`count` delivery requests, round-robin over the workload's webhooks, each for an event
    of its own: what fanout writes for part 1's events (unordered, no position)."""
    webhooks = list(zip(workload.secrets, workload.targets, strict=True))
    bodies = {webhook_id: delivery_body(target).decode() for webhook_id, target in webhooks}
    requests = []
    for n in range(count):
        webhook_id, target = webhooks[n % len(webhooks)]
        event_id = str(uuid.uuid4())
        requests.append(
            DeliveryRequested(
                delivery_id=delivery_id_for(webhook_id, event_id),
                webhook_id=webhook_id,
                organization_id=target.organization_id,
                event_id=event_id,
                event="participant.joined",
                body=bodies[webhook_id],
                created_at=now,
                room_id=target.room_id,
            )
        )
    return requests


async def backlog_run(
    stack: Stack,
    workload: Workload,
    *,
    requests: int,
    max_s: float,
    progress: Callable[[str], None],
    profiler: Profiler | None = None,
) -> dict:
    """The backlog written, then drained by a delivery process of its own (see above);
    `profiler` records that process for `PROFILE_S` from the window's start."""
    assert stack.receiver is not None
    kafka = stack.kafka_settings(NAMESPACE)
    topics = Topics.from_settings(kafka)
    await ensure_topics(kafka, topics)
    backlog = backlog_requests(workload, requests, now=datetime.now(UTC))
    progress(f"writing {requests:,} delivery requests")
    producer = make_producer(kafka, linger_ms=20, max_batch_size=1024 * 1024)
    await producer.start()
    try:
        for start in range(0, len(backlog), CHUNK):
            acks = [
                await producer.send(
                    topics.deliveries,
                    value=r.model_dump_json().encode(),
                    key=r.webhook_id.encode(),
                    headers=JSON_HEADERS,
                )
                for r in backlog[start : start + CHUNK]
            ]
            await asyncio.gather(*acks)
    finally:
        await producer.stop()

    low, high = round(0.05 * requests), round(0.95 * requests)
    async with ReceivedCounter(stack.receiver) as received:
        base = received.value
        progress("starting a delivery process on the backlog")
        await stack.add_delivery_replica(INSTANCE, KAFKA_TOPIC_NAMESPACE=NAMESPACE)
        meter = stack.cpu_meter(bench_pid=os.getpid())
        try:
            deadline = time.monotonic() + max_s
            if not await _reached(lambda: received.value - base >= low, deadline):
                raise StackError(f"delivery did not start on the backlog within {max_s:.0f} s")
            t0 = await stack.receiver.track_start()
            meter.start()
            if profiler is not None:
                profiler.start({INSTANCE: stack.processes.get(INSTANCE).pid}, PROFILE_S)
            # Past the deadline the window ends there, and the details say so.
            whole = await _reached(lambda: received.value - base >= high, deadline)
            t1, tracked = await stack.receiver.track_stop()
            cpu = meter.stop()
            progress(f"backlog: {received.value - base:,}/{requests:,} delivered, draining")
            drained = await received.settle(base + requests)
        except BaseException:
            if profiler is not None:
                profiler.kill()
            raise
        finally:
            started = stack.processes.get(INSTANCE)
            stack.processes.stop([started] if started is not None else [])
            await stack.drop_topics(kafka)
    ids = {i for i in tracked.delivery_ids if i}
    success = await recorded_success(stack, ids)
    window = t1 - t0
    return {
        "profile": await profiler.finish() if profiler is not None else None,
        "per_s": success / window,
        "window_s": window,
        "backlog": requests,
        "window_reached_95_percent": whole,
        "received_in_window": len(tracked.delivery_ids),
        "recorded_success_of_received": success,
        "received_after_drain": drained - base,
        "cpu_percent": cpu,
    }


async def _reached(condition: Callable[[], bool], deadline: float) -> bool:
    """Wait until `condition()` holds (True) or the deadline passes (False)."""
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True
