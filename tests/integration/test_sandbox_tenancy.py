"""Tenant isolation in the sandbox with real Deno: each organization's runs go to host processes
of its own, from a bounded pool (placement.py); one account's crash never touches another's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from services.workflow_runner.sandbox import (
    RunOutcome,
    Sandbox,
    SandboxSettings,
    SandboxUnavailable,
)
from services.workflow_runner.sandbox.host import Host
from tests.support.polling import eventually
from tests.support.sandbox import LOG_NEW_PARTICIPANTS, MemoryBindings, request
from tests.support.sandbox_hosts import gone

pytestmark = pytest.mark.integration

HEAP_BOMB = (
    "export default async () => { const a = []; while (true) a.push(new Array(1e5).fill(1)); };"
)


@dataclass
class Held(MemoryBindings):
    """room.get() is answered once `release` is set: until then its run stays under way."""

    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def call(self, method: str, args: list) -> object:
        answer = await super().call(method, args)
        await self.release.wait()
        return answer


async def started(settings: SandboxSettings) -> Sandbox:
    sandbox = Sandbox(settings)
    await sandbox.start()
    return sandbox


@pytest.fixture
async def pool_of_two() -> AsyncIterator[Sandbox]:
    # The CPU limit out of the heap bomb's way: it must meet the heap limit first, however
    # slow the machine (on a slow one it had spent 507 ms of CPU before, past the 500 default).
    sandbox = await started(SandboxSettings(max_hosts=2, wall_timeout_s=10.0, cpu_limit_ms=10_000))
    yield sandbox
    await sandbox.close()


async def run(
    sandbox: Sandbox, organization: str, run_id: str, bindings: MemoryBindings | None = None
) -> RunOutcome:
    outcome = await sandbox.run(
        request(LOG_NEW_PARTICIPANTS, workflow=f"wf-{organization}", run=run_id,
                organization=organization),
        bindings or MemoryBindings(),
    )  # fmt: skip
    assert outcome.status == "success", outcome.error
    return outcome


def host_of(sandbox: Sandbox, organization: str) -> Host:
    host = sandbox.host_for(organization)
    assert host is not None and host.pid is not None
    return host


def under_way(sandbox: Sandbox, organization: str) -> Callable[[], Awaitable[bool]]:
    """A run of the organization is under way on its host."""

    async def probe() -> bool:
        host = sandbox.host_for(organization)
        return host is not None and host.in_flight > 0

    return probe


async def test_two_organizations_runs_land_on_different_host_processes() -> None:
    sandbox = await started(SandboxSettings(max_hosts=4))
    try:
        await asyncio.gather(run(sandbox, "org-a", "a1"), run(sandbox, "org-b", "b1"))
        host_a, host_b = host_of(sandbox, "org-a"), host_of(sandbox, "org-b")
        assert host_a.pid != host_b.pid
        other = await sandbox.run(
            request(LOG_NEW_PARTICIPANTS, workflow="wf-a-2", run="a2", organization="org-a"),
            MemoryBindings(),
        )
        assert other.status == "success" and other.cold
        # A's second workflow is in A's process; B's holds B's Worker alone.
        assert host_of(sandbox, "org-a") is host_a
        assert (host_a.workers, host_b.workers) == (2, 1)
    finally:
        await sandbox.close()


async def test_a_heap_bomb_of_one_account_leaves_anothers_worker_warm_and_its_run_unaffected(
    pool_of_two: Sandbox,
) -> None:
    sandbox = pool_of_two
    assert (await run(sandbox, "org-b", "b-cold")).cold
    host_b = host_of(sandbox, "org-b")
    held = Held()
    during = asyncio.create_task(run(sandbox, "org-b", "b-during", held))
    await eventually(under_way(sandbox, "org-b"), timeout_s=10)
    exploded = await sandbox.run(
        request(HEAP_BOMB, workflow="wf-bomb", run="bomb", organization="org-a"),
        MemoryBindings(),
    )
    assert exploded.status == "error" and exploded.error is not None
    assert "out of memory" in exploded.error["message"]
    held.release.set()
    outcome = await during
    assert not outcome.cold and not outcome.crashed
    assert held.calls == [("room.get", [])]  # one try: it was not run again
    assert host_b.alive and host_of(sandbox, "org-b") is host_b


async def test_the_pool_bound_holds_and_the_least_recently_used_idle_host_is_evicted(
    pool_of_two: Sandbox,
) -> None:
    sandbox = pool_of_two
    await run(sandbox, "org-a", "a1")
    host_a = host_of(sandbox, "org-a")
    await run(sandbox, "org-b", "b1")
    host_b = host_of(sandbox, "org-b")
    await run(sandbox, "org-c", "c1")  # the pool is full: a's host goes, a used least recently
    assert sandbox.host_for("org-a") is None
    await eventually(gone(host_a), timeout_s=10)
    assert host_of(sandbox, "org-b") is host_b and host_b.alive
    assert len([host for host in sandbox.hosts() if host is not None]) == 2
    again = await run(sandbox, "org-a", "a2")  # its Workers went with its host
    assert again.cold and host_of(sandbox, "org-a").pid not in {host_a.pid, host_b.pid}
    assert sandbox.host_for("org-b") is None  # b's idle host was the least recently used


async def test_when_every_host_carries_runs_a_new_organization_waits_and_never_shares() -> None:
    sandbox = await started(SandboxSettings(max_hosts=1, wall_timeout_s=10.0))
    try:
        held = Held()
        busy = asyncio.create_task(run(sandbox, "org-a", "a1", held))
        await eventually(under_way(sandbox, "org-a"), timeout_s=10)
        host_a = host_of(sandbox, "org-a")
        waiting = asyncio.create_task(run(sandbox, "org-b", "b1"))

        async def one_waits() -> bool:
            return sandbox.waiting_for_host == 1

        await eventually(one_waits, timeout_s=10)
        assert not waiting.done() and host_a.in_flight == 1
        released = datetime.now(UTC)
        held.release.set()
        await busy
        outcome = await waiting
        assert outcome.started_at >= released  # it ran only once a's host was idle
        assert host_of(sandbox, "org-b").pid != host_a.pid
        await eventually(gone(host_a), timeout_s=10)  # evicted for b
    finally:
        await sandbox.close()


async def test_the_wait_for_a_host_is_bounded() -> None:
    sandbox = await started(SandboxSettings(max_hosts=1, wall_timeout_s=10.0, host_wait_s=0.2))
    try:
        held = Held()
        busy = asyncio.create_task(run(sandbox, "org-a", "a1", held))
        await eventually(under_way(sandbox, "org-a"), timeout_s=10)
        with pytest.raises(SandboxUnavailable, match="other organizations' runs"):
            await sandbox.run(
                request(LOG_NEW_PARTICIPANTS, workflow="wf-b", run="b1", organization="org-b"),
                MemoryBindings(),
            )
        held.release.set()
        await busy
    finally:
        await sandbox.close()


async def test_a_spare_still_starting_is_never_handed_a_run() -> None:
    # The first organization takes the started spare and a new spare begins to start; the
    # next organization, arriving before that one has started, must get a host that can take
    # its run (it once got the half-started spare, whose socket was not connected yet).
    for attempt in range(5):
        sandbox = await started(SandboxSettings(max_hosts=2, wall_timeout_s=10.0))
        try:
            await run(sandbox, "org-a", f"a{attempt}")
            await run(sandbox, "org-b", f"b{attempt}")
            assert host_of(sandbox, "org-a").pid != host_of(sandbox, "org-b").pid
        finally:
            await sandbox.close()
