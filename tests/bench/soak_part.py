"""Part 11, soak (only when asked: `make bench PART=soak`): the platform for minutes at a
steady rate, with rooms that come and go as real rooms do, and every process's memory sampled.

One account of its own: three webhooks on every room (a plain one, one with
`ordering: "room"`, and one on the receiver's `/flaky/` endpoint, which answers 500 to each
delivery's first attempt, so every event also makes a retry) and a workflow that reads
`room.get()` and `room.getUsers()`. Each event is a `participant.joined` in a room never seen
before, so per-room state (ordering heads, the projection's rooms) is made all the time and
must go with its rooms.

The figure is each service's resident memory growth over the second half of the run, in MB a
minute (a least-squares slope over the samples; the first half lets caches and heaps fill).
A leak shows as a slope that does not fall as the run gets longer; the dev broker keeps every
record in memory, so its own growth is reported but is no figure. After the publishing stops,
the part waits (up to `DRAIN_TIMEOUT_S`) until every event's deliveries and run have ended,
and reports what was still unfinished: a delivery still pending or a run still running, or
either not stored at all (its request still in Kafka), so a run that only measured a growing
backlog says so.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import psutil

from shared.kafka import Topics
from tests.bench.load import EventPublisher, Target
from tests.bench.pipeline import enabled_in_index, wait_for_index
from tests.bench.stack import Account, Stack

SERVICES = ("registry", "fanout", "delivery", "workflow_runner")
DRAIN_TIMEOUT_S = 120.0
# The account's webhooks, each on every event (`create_soak_account`).
WEBHOOKS = 3
WORKFLOW = """\
export default async function(event, { room }) {
  const [roomData, users] = await Promise.all([room.get(), room.getUsers()]);
  return { room: roomData?.id ?? null, users: users.length };
}"""


class FreshRooms(Sequence[Target]):
    """An endless sequence of targets, each in a room of its own (what `at_rate` cycles over)."""

    def __init__(self, organization_id: str) -> None:
        self._organization_id = organization_id
        self._run = uuid.uuid4().hex[:8]

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, index):  # type: ignore[no-untyped-def] - Sequence's two signatures
        if isinstance(index, slice):
            raise TypeError("FreshRooms is not sliced")
        return Target(self._organization_id, f"soak-{self._run}-{index}")


@dataclass
class Samples:
    """(minutes since the start, MB) per process name."""

    by_process: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    def add(self, minute: float, rss_mb: dict[str, float]) -> None:
        for name, mb in rss_mb.items():
            self.by_process.setdefault(name, []).append((round(minute, 3), round(mb, 1)))


def growth_mb_per_min(samples: Sequence[tuple[float, float]], *, since: float) -> float | None:
    """The least-squares slope (MB a minute) of the samples taken at `since` minutes or later;
    None with fewer than three such samples."""
    late = [(t, mb) for t, mb in samples if t >= since]
    if len(late) < 3:
        return None
    minutes, mbs = zip(*late, strict=True)
    return statistics.linear_regression(minutes, mbs).slope


def resident_mb(stack: Stack) -> dict[str, float]:
    """RSS now of each service's own process, the Deno hosts under the runner (together),
    and the broker."""
    found: dict[str, float] = {}
    for name in (*SERVICES, "broker"):
        child = stack.processes.get(name)
        if child is None:
            continue
        try:
            process = psutil.Process(child.pid)
            found[name] = process.memory_info().rss / 2**20
            if name == "workflow_runner":
                hosts = process.children(recursive=True)
                found["deno hosts"] = sum(_rss(p) for p in hosts) / 2**20
        except psutil.NoSuchProcess:
            continue
    return found


def _rss(process: psutil.Process) -> int:
    try:
        return process.memory_info().rss
    except psutil.NoSuchProcess:
        return 0


async def create_soak_account(stack: Stack) -> Account:
    """The soak's account, with its webhooks and workflow."""
    assert stack.receiver is not None and stack.session is not None
    enabled_before = await enabled_in_index(stack)
    account = await stack.create_account(f"bench-soak-{uuid.uuid4().hex[:6]}")
    bodies = [
        {"url": stack.receiver.hook_url("soak-plain")},
        {"url": stack.receiver.hook_url("soak-ordered"), "ordering": "room"},
        {"url": stack.receiver.flaky_url("soak")},
    ]
    assert len(bodies) == WEBHOOKS
    for body in bodies:
        await stack.create_webhook(account, {"events": ["participant.joined"], **body})
    url = f"{stack.api_url}/v1/accounts/{account.id}/workflows"
    workflow = {"name": "Room and users", "events": ["participant.joined"], "code": WORKFLOW}
    async with stack.session.post(url, json=workflow, headers=account.auth) as response:
        if response.status != 201:
            raise RuntimeError(f"creating the workflow answered {response.status}")
    await wait_for_index(stack, enabled_before + len(bodies))
    return account


async def soak_run(
    stack: Stack,
    *,
    rate: float,
    minutes: float,
    sample_s: float,
    progress: Callable[[str], None],
) -> dict:
    account = await create_soak_account(stack)
    samples = Samples()
    started = time.monotonic()
    duration_s = minutes * 60
    topic = Topics.from_settings(stack.kafka_settings()).events
    sampling = asyncio.create_task(_sample(stack, samples, started, sample_s, progress))
    try:
        async with EventPublisher(stack.kafka_settings(), topic) as publisher:
            await publisher.at_rate(FreshRooms(account.id), rate=rate, duration_s=duration_s)
            published = publisher.published.events
    finally:
        sampling.cancel()
    progress(f"published {published:,}; waiting for every delivery and run to end")
    expected = Expected(deliveries=published * WEBHOOKS, runs=published)
    drain_s, left = await _drain(stack, account.id, expected)
    outcome = await _outcome(stack, account.id)
    growth = {
        name: growth_mb_per_min(points, since=minutes / 2)
        for name, points in samples.by_process.items()
    }
    return {
        "rate": rate,
        "minutes": minutes,
        "published": published,
        "growth_mb_per_min": growth,
        "service_growth_mb_per_min": max(
            (g for name, g in growth.items() if name in SERVICES and g is not None), default=None
        ),
        "rss_first_mb": {n: points[0][1] for n, points in samples.by_process.items()},
        "rss_last_mb": {n: points[-1][1] for n, points in samples.by_process.items()},
        "samples": samples.by_process,
        "drain_s": round(drain_s, 1),
        "expected": {"deliveries": expected.deliveries, "runs": expected.runs},
        "unfinished": {"deliveries": left.deliveries, "runs": left.runs},
        **outcome,
    }


async def _sample(
    stack: Stack,
    samples: Samples,
    started: float,
    every_s: float,
    progress: Callable[[str], None],
) -> None:
    while True:
        minute = (time.monotonic() - started) / 60
        rss = await asyncio.to_thread(resident_mb, stack)
        samples.add(minute, rss)
        shown = ", ".join(f"{name} {mb:.0f}" for name, mb in rss.items())
        progress(f"minute {minute:.1f}: RSS MB {shown}")
        await asyncio.sleep(every_s)


@dataclass(frozen=True)
class Expected:
    """Deliveries and runs: what the published events make, or what is left of them."""

    deliveries: int
    runs: int


def unfinished(expected: Expected, *, ended_deliveries: int, ended_runs: int) -> Expected:
    """What has not ended yet: deliveries and runs still under way or not stored at all."""
    return Expected(
        deliveries=max(0, expected.deliveries - ended_deliveries),
        runs=max(0, expected.runs - ended_runs),
    )


async def _by_status(stack: Stack, organization_id: str) -> tuple[dict[str, int], dict[str, int]]:
    """The account's deliveries and runs, counted by status."""
    assert stack.pool is not None
    org = uuid.UUID(organization_id)
    deliveries = await stack.pool.fetch(
        "SELECT status, count(*) AS n FROM delivery.deliveries"
        " WHERE organization_id = $1 GROUP BY status",
        org,
    )
    runs = await stack.pool.fetch(
        "SELECT status, count(*) AS n FROM workflow.executions"
        " WHERE organization_id = $1 GROUP BY status",
        org,
    )
    return {r["status"]: r["n"] for r in deliveries}, {r["status"]: r["n"] for r in runs}


async def _drain(stack: Stack, organization_id: str, expected: Expected) -> tuple[float, Expected]:
    """Seconds waited until every expected delivery and run has ended (at most
    DRAIN_TIMEOUT_S), and what still had not."""
    started = time.monotonic()
    while True:
        deliveries, runs = await _by_status(stack, organization_id)
        left = unfinished(
            expected,
            ended_deliveries=sum(n for status, n in deliveries.items() if status != "pending"),
            ended_runs=sum(n for status, n in runs.items() if status != "running"),
        )
        waited = time.monotonic() - started
        if left == Expected(0, 0) or waited > DRAIN_TIMEOUT_S:
            return waited, left
        await asyncio.sleep(1.0)


async def _outcome(stack: Stack, organization_id: str) -> dict:
    """The account's deliveries and runs by status, and the ordering state left behind."""
    assert stack.pool is not None
    deliveries, runs = await _by_status(stack, organization_id)
    heads = await stack.pool.fetchval("SELECT count(*) FROM delivery.order_heads")
    queued = await stack.pool.fetchval("SELECT count(*) FROM delivery.order_queue")
    return {
        "deliveries": deliveries,
        "runs": runs,
        "order_heads_left": heads,
        "order_queue_left": queued,
    }
