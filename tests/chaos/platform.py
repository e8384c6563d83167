"""A chaos run: the platform as `make run` starts it (the bench's `Stack`: every service its own
process), webhooks on the receiver, a steady publisher whose event ids are known, faults at set
points of the load, and the final check of every (webhook, event) pair.

Faults are scheduled by how much of the load has been published (`at=0.3`: once 30 % of the
events are out), so a short run and a long one hit the same phase of the work. Faults on
different processes may overlap; those on one process run in order, each after the last one
recovered (a process cannot be killed while it is still starting).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import asyncpg

from devtool.broker import TANSU_METADATA_MAX_AGE_MS
from shared.kafka import Topics
from shared.messages import delivery_id_for
from tests.bench.load import EventPublisher, Target
from tests.bench.pipeline import wait_for_index
from tests.bench.processes import Processes
from tests.bench.stack import NAMESPACE, PARTITIONS, Stack, StackError
from tests.chaos.ledger import Ledger, Receipt, Settled

# The lease: short enough that a killed process's leased deliveries come back within a run
# (production keeps the default, 60 s). The metadata age: the broker scenario restarts the
# broker empty, and its services must find the topics made again within seconds, as the dev
# stack's do (devtool/broker.py).
CHAOS_SETTINGS = {
    "ROOMHOOKS_DELIVERY_LEASE_S": "10",
    "ROOMHOOKS_DELIVERY_TIMEOUT_S": "5",
    "KAFKA_METADATA_MAX_AGE_MS": str(TANSU_METADATA_MAX_AGE_MS),
}
# How long after the last event every expected delivery may take to end `success`.
SETTLE_TIMEOUT_S = 120.0
# A service restarted after a kill waits this long first, as the dev supervisor's backoff does.
RESTART_DELAY_S = 1.0

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Hook:
    """One webhook of the run, on its own room."""

    webhook_id: str
    target: Target
    flaky: bool  # its endpoint fails every first attempt


@dataclass(frozen=True)
class Fault:
    """`action` runs once `at` (0..1) of the load has been published."""

    at: float
    name: str
    action: Callable[[], Awaitable[float | None]]  # returns a recovery time in s, if it has one
    target: str = ""  # faults on the same target run one after the other


@dataclass
class FaultLog:
    name: str
    at_s: float  # since the load began
    recovery_s: float | None


@dataclass
class ChaosRun:
    name: str
    state_dir: Path
    server_url: str
    progress: Progress
    settings: dict[str, str] = field(default_factory=dict)
    partitions: int = PARTITIONS
    stack: Stack = field(init=False)
    hooks: list[Hook] = field(default_factory=list)
    ledger: Ledger = field(default_factory=Ledger)
    faults: list[FaultLog] = field(default_factory=list)
    published: int = 0
    load_started: float = 0.0
    receipts: list[Receipt] = field(default_factory=list)
    id_mismatches: int = 0

    def __post_init__(self) -> None:
        self.stack = Stack(
            state_dir=self.state_dir,
            server_url=self.server_url,
            processes=Processes(self.state_dir / "logs"),
            service_settings=CHAOS_SETTINGS | self.settings,
            partitions=self.partitions,
        )

    async def __aenter__(self) -> ChaosRun:
        try:
            await self.stack.start(self.progress)
        except BaseException:
            await self.stack.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stack.stop()

    @property
    def topics(self) -> Topics:
        return Topics(NAMESPACE)

    # --- workload ------------------------------------------------------------------------

    async def add_webhooks(
        self, *, accounts: int, per_account: int, flaky_every: int = 0, **fields: object
    ) -> None:
        """`accounts` x `per_account` webhooks, each on `participant.joined` in its own room
        (with the API `fields` given); every `flaky_every`-th one (0: none) on an endpoint
        that fails first attempts."""
        receiver = self.stack.receiver
        assert receiver is not None
        n = 0
        for a in range(accounts):
            account = await self.stack.create_account(f"chaos-{self.name}-{a}")
            for w in range(per_account):
                flaky = bool(flaky_every) and n % flaky_every == 0
                path = f"a{a}w{w}"
                url = receiver.flaky_url(path) if flaky else receiver.hook_url(path)
                room = f"room-{a}-{w}"
                webhook = await self.stack.create_webhook(
                    account,
                    {"url": url, "events": ["participant.joined"], "roomId": room, **fields},
                )
                self.hooks.append(Hook(webhook["id"], Target(account.id, room), flaky))
                n += 1
        await wait_for_index(self.stack, len(self.hooks))
        assert self.stack.receiver is not None
        await self.stack.receiver.track_start()

    # --- load and faults -----------------------------------------------------------------

    async def run_load(self, *, events: int, rate: float, faults: Sequence[Fault] = ()) -> None:
        """Publish `events` more events round-robin over the webhooks at `rate`/s, injecting
        `faults` (placed by the share of these events published)."""
        lanes: dict[str, list[Fault]] = {}
        for fault in sorted(faults, key=lambda f: f.at):
            lanes.setdefault(fault.target, []).append(fault)
        first, last = self.published, self.published + events
        self.load_started = time.monotonic()
        injector = asyncio.ensure_future(
            asyncio.gather(*(self._inject(lane, first, events) for lane in lanes.values()))
        )
        try:
            async with EventPublisher(self.stack.kafka_settings(), self.topics.events) as out:
                acks: list[asyncio.Future] = []
                while self.published < last:
                    elapsed = time.monotonic() - self.load_started
                    due = min(last, first + int(elapsed * rate) + 1)
                    while self.published < due:
                        hook = self.hooks[self.published % len(self.hooks)]
                        event_id = f"chaos-{self.name}-{self.published}"
                        self.ledger.expect(delivery_id_for(hook.webhook_id, event_id))
                        acks.append(await out.send(hook.target, event_id=event_id))
                        self.published += 1
                    if len(acks) >= 500:
                        await asyncio.gather(*acks)
                        acks = []
                    await asyncio.sleep(0.005)
                    if injector.done():
                        injector.result()  # a fault that failed: stop here, say why
                await asyncio.gather(*acks)
            await injector
        finally:
            injector.cancel()

    async def _inject(self, faults: list[Fault], first: int, events: int) -> None:
        for fault in faults:
            while self.published - first < fault.at * events:
                await asyncio.sleep(0.02)
            at_s = time.monotonic() - self.load_started
            self.progress(f"fault: {fault.name} at {at_s:.1f} s")
            recovery = await fault.action()
            self.faults.append(FaultLog(fault.name, round(at_s, 2), recovery))

    def kill_and_restart(self, instance: str) -> Callable[[], Awaitable[float]]:
        """SIGKILL `instance`, restart it after the supervisor's delay; seconds from the kill
        until it answered /readyz again."""

        async def action() -> float:
            killed_at = time.monotonic()
            self.stack.kill(instance)
            await asyncio.sleep(RESTART_DELAY_S)
            await self.stack.restart(instance)
            return round(time.monotonic() - killed_at, 2)

        return action

    # --- the check -----------------------------------------------------------------------

    async def wait_for_success(self, *, timeout_s: float = SETTLE_TIMEOUT_S) -> int:
        """Wait until every expected delivery is `success` in Postgres (or `timeout_s`);
        returns how many are."""
        assert self.stack.pool is not None
        expected = list(self.ledger.expected)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                succeeded = await self.stack.pool.fetchval(
                    "SELECT count(*) FROM delivery.deliveries"
                    " WHERE id = ANY($1::uuid[]) AND status = 'success'",
                    expected,
                )
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                succeeded = 0  # a restarted server ends the pool's connections once
                self.progress(f"settling: Postgres answered {type(exc).__name__}")
            self.progress(f"settling: {succeeded:,}/{len(expected):,} success in Postgres")
            if succeeded == len(expected) or time.monotonic() > deadline:
                return succeeded
            await asyncio.sleep(1.0)

    async def settle(self, *, timeout_s: float = SETTLE_TIMEOUT_S) -> tuple[Settled, int]:
        """Wait for every expected delivery (`wait_for_success`), then account for what the
        receiver saw. Returns the receipts' tally and how many expected deliveries Postgres
        holds as `success`."""
        assert self.stack.receiver is not None
        succeeded = await self.wait_for_success(timeout_s=timeout_s)
        _now, tracked = await self.stack.receiver.track_stop()
        receipts = [
            Receipt(delivery_id, attempt, at)
            for delivery_id, attempt, at in zip(
                tracked.delivery_ids, tracked.attempts, tracked.received_at, strict=True
            )
        ]
        self.receipts = receipts
        self.id_mismatches = tracked.id_mismatches
        return self.ledger.settle(receipts), succeeded

    async def all_ready(self, *, timeout_s: float) -> float | None:
        """Seconds until every service answered /readyz 200, or None after `timeout_s`."""
        started = time.monotonic()
        names = ["registry", *self.stack.health_ports]
        try:
            for name in names:
                left = timeout_s - (time.monotonic() - started)
                await self.stack.wait_ready(name, self.stack.ready_url(name), timeout_s=left)
        except StackError:
            return None
        return round(time.monotonic() - started, 2)

    def longest_silence_s(self) -> float:
        """The longest stretch during the run in which the receiver got nothing."""
        times = sorted(r.received_at for r in self.receipts)
        return round(max((b - a for a, b in pairwise(times)), default=0), 2)
