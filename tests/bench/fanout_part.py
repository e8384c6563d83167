"""Part 6: fan-out with 100,000 webhooks over 10,000 accounts.

The matcher alone: `tests.bench.fanout_matcher` in a process of its own (its RSS is the index's
alone). The full service: a second `python -m services.fanout` on its own topic namespace of
the same broker, its registry topic filled with the same kind of 100k webhook records the
registry relay would publish, and a backlog of events (90 % room events) published before it
starts; it loads the index, then consumes the backlog as fast as it can. Its rate is read
from its own /metrics (events consumed and committed; delivery requests acknowledged); its
RSS from the process. Nothing consumes the delivery requests it emits. The namespace's topics
are deleted after each run, so what it wrote does not slow the runs and parts after it.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psutil

from shared.kafka import JSON_HEADERS, Topics, dumps, ensure_topics, make_producer
from shared.messages import registry_key
from shared.settings import KafkaSettings
from tests.bench import fanout_matcher
from tests.bench.processes import family, python_module
from tests.bench.profiling import Profiler
from tests.bench.stack import Stack, scrape
from tests.support.services import free_port

NAMESPACE = "benchfanout"
# py-spy's window (with --profile) on the one-replica run, from when it is ready: inside the
# consuming of the backlog at most rates this part has seen (100,000 events at 8,000-18,000/s;
# at the fastest the backlog is gone in 5.5 s, and py-spy keeps what it sampled until then).
PROFILE_S = 6.0
# Samples a second: one process for a few seconds, so more than the services' default.
PROFILE_HZ = 200
CONSUMED = "roomhooks_fanout_events_consumed_total"
REQUESTS = "roomhooks_fanout_delivery_requests_total"


async def matcher_run(stack: Stack, *, webhooks: int, accounts: int, events: int) -> dict:
    """`python -m tests.bench.fanout_matcher` in its own process; its figures."""
    out = stack.processes.log_dir / "fanout_matcher.json"
    out.unlink(missing_ok=True)
    child = stack.processes.start(
        "fanout_matcher",
        python_module(
            "tests.bench.fanout_matcher",
            f"--webhooks={webhooks}",
            f"--accounts={accounts}",
            f"--events={events}",
            f"--json-out={out}",
        ),
        stack.env(),
    )
    code = await asyncio.to_thread(child.proc.wait)  # type: ignore[union-attr]
    if code != 0:
        raise RuntimeError(f"fanout_matcher exited with {code}:\n{child.log_tail()}")
    return json.loads(out.read_text())


class _Capture:
    """Stands in for an index: keeps every record `fanout_matcher.build` applies."""

    def __init__(self) -> None:
        self.records: list[Any] = []

    def apply(self, record: Any) -> bool:
        self.records.append(record)
        return True


class _Indexes:
    def __init__(self) -> None:
        self.webhooks = _Capture()
        self.workflows = _Capture()


async def service_run(
    stack: Stack,
    *,
    webhooks: int,
    accounts: int,
    events: int,
    max_s: float,
    progress: Callable[[str], None],
    replicas: int = 1,
    profiler: Profiler | None = None,
) -> dict:
    """`replicas` fanout processes in one consumer group on a backlog of their own (a
    namespace per replica count, so each run starts from the first event). `profiler`
    records the first replica for `PROFILE_S` once every replica is ready."""
    namespace = NAMESPACE if replicas == 1 else f"{NAMESPACE}{replicas}"
    kafka = KafkaSettings(
        bootstrap_servers=stack.bootstrap, topic_namespace=namespace, partitions=12
    )
    topics = Topics.from_settings(kafka)
    await ensure_topics(kafka, topics)
    rng = random.Random(7)
    captured = _Indexes()
    rooms = 20
    orgs = fanout_matcher.build(
        captured,  # type: ignore[arg-type]
        webhooks=webhooks,
        workflows=0,
        accounts=accounts,
        rooms=rooms,
        rng=rng,
    )
    progress(f"publishing {webhooks:,} webhook records")
    producer = make_producer(kafka, linger_ms=20, max_batch_size=1024 * 1024)
    await producer.start()
    try:
        acks = []
        for record in captured.webhooks.records:
            acks.append(
                await producer.send(
                    topics.registry,
                    value=dumps(record.model_dump(mode="json")),
                    key=registry_key("webhook", record.id).encode(),
                    headers=JSON_HEADERS,
                )
            )
        await asyncio.gather(*acks)
        progress(f"publishing {events:,} events")
        now = datetime.now(UTC)
        acks = []
        for org, name, room, _ in fanout_matcher.sample_queries(
            orgs, rooms=rooms, events=events, rng=rng
        ):
            body = fanout_matcher.event_body(org, name, room, now)
            acks.append(
                await producer.send(
                    topics.events,
                    value=dumps(body),
                    key=(room or org).encode(),
                    headers=JSON_HEADERS,
                )
            )
        await asyncio.gather(*acks)
    finally:
        await producer.stop()

    ports = [free_port() for _ in range(replicas)]
    progress(f"starting {replicas} fanout process(es) on the backlog")
    started = time.monotonic()
    children = [
        stack.processes.start(
            f"fanout_100k_{n}" if replicas > 1 else "fanout_100k",
            python_module("services.fanout"),
            stack.env(KAFKA_TOPIC_NAMESPACE=namespace, ROOMHOOKS_FANOUT_HEALTH_PORT=str(port)),
        )
        for n, port in enumerate(ports)
    ]
    try:
        for child, port in zip(children, ports, strict=True):
            await stack.wait_ready(child.name, f"http://127.0.0.1:{port}/readyz", timeout_s=120)
        load_s = time.monotonic() - started
        rss_loaded = max(psutil.Process(c.pid).memory_info().rss / 2**20 for c in children)
        # Every process's share while it consumes: the dev broker serves the backlog and
        # takes the requests, so its CPU says when it, not fanout, is the limit.
        meter = stack.cpu_meter(bench_pid=os.getpid())
        meter.start()
        if profiler is not None:
            profiler.start({children[0].name: children[0].pid}, PROFILE_S)
        samples, peak_rss, cpu = await _follow(
            stack,
            [c.pid for c in children],
            [f"http://127.0.0.1:{port}/metrics" for port in ports],
            events,
            max_s,
            progress,
        )
        cpu_by_process = meter.stop()
    except BaseException:
        if profiler is not None:
            profiler.kill()
        raise
    finally:
        stack.processes.stop(children)
        await stack.drop_topics(kafka)
    rate, requests_rate = _steady_rate(samples, events)
    return {
        "profile": await profiler.finish() if profiler is not None else None,
        "replicas": replicas,
        "events_per_s": rate,
        "delivery_requests_per_s": requests_rate,
        "rss_mb": peak_rss,
        "rss_after_load_mb": rss_loaded,
        "index_load_s": load_s,
        "events_backlog": events,
        "events_consumed": samples[-1][1] if samples else 0,
        "cpu_percent": cpu,
        "cpu_percent_by_process": cpu_by_process,
    }


async def _follow(
    stack: Stack,
    pids: list[int],
    urls: list[str],
    events: int,
    max_s: float,
    progress: Callable[[str], None],
) -> tuple[list[tuple[float, float, float]], float, float]:
    """(t, consumed, requests), summed over the replicas, every 0.25 s until the backlog is
    consumed or `max_s`; the peak RSS of one replica; their CPU, % of a core."""
    assert stack.session is not None
    processes = [psutil.Process(pid) for pid in pids]
    samples: list[tuple[float, float, float]] = []
    peak = 0.0

    def cpu_s() -> float:
        return sum(p.cpu_times().user + p.cpu_times().system for pid in pids for p in family(pid))

    cpu0 = cpu_s()
    started = time.monotonic()
    while time.monotonic() - started < max_s:
        scraped = [await scrape(stack.session, url) for url in urls]
        now = time.monotonic()
        consumed = sum(m.get(CONSUMED, 0.0) for m in scraped)
        samples.append((now, consumed, sum(m.get(REQUESTS, 0.0) for m in scraped)))
        peak = max(peak, *(p.memory_info().rss / 2**20 for p in processes))
        progress(f"fanout service: {consumed:,.0f}/{events:,} events consumed")
        if consumed >= events:
            break
        await asyncio.sleep(0.25)
    wall = time.monotonic() - started
    return samples, peak, round(100 * (cpu_s() - cpu0) / wall, 1)


def _steady_rate(samples: list[tuple[float, float, float]], events: int) -> tuple[float, float]:
    """Events/s and requests/s between the first sample past 5 % of the backlog and the last
    one below 95 % (start-up and the tail left out)."""
    inside = [s for s in samples if 0.05 * events <= s[1] <= 0.95 * events]
    if len(inside) < 2:
        inside = [s for s in samples if s[1] > 0]
    if len(inside) < 2:
        return 0.0, 0.0
    (t0, c0, r0), (t1, c1, r1) = inside[0], inside[-1]
    return (c1 - c0) / (t1 - t0), (r1 - r0) / (t1 - t0)
