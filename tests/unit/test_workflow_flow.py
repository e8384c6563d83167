"""How run requests flow through the runner: started as they come within the caps, committed
only up to the lowest one not yet recorded."""

from __future__ import annotations

import asyncio

from services.workflow_runner.flow import Fetched, Offsets, RunFlow, startable

P0, P1 = ("runs", 0), ("runs", 1)


def fetched(offset: int, org: str = "org-a", *, partition=P0, run_id: str | None = None):
    run = run_id or f"run-{partition[1]}-{offset}"
    return Fetched(partition, offset, org, run, request=run)


def test_a_partition_is_committed_up_to_its_lowest_run_not_yet_recorded():
    offsets = Offsets()
    for offset in (10, 11, 12):
        offsets.fetched(P0, offset)
    offsets.done(P0, 11)
    offsets.done(P0, 12)
    assert offsets.committable() == {P0: 10}  # 10 is still running: 11 and 12 wait for it
    offsets.committed({P0: 10})
    assert offsets.committable() == {}
    offsets.done(P0, 10)
    assert offsets.committable() == {P0: 13}


def test_partitions_are_committed_each_on_its_own():
    offsets = Offsets()
    offsets.fetched(P0, 5)
    offsets.fetched(P1, 7)
    offsets.done(P1, 7)
    assert offsets.committable() == {P0: 5, P1: 8}


def test_an_offset_fetched_twice_is_tracked_once():
    offsets = Offsets()
    assert offsets.fetched(P0, 3)
    assert not offsets.fetched(P0, 3)


def test_a_partition_no_longer_ours_is_not_committed():
    offsets = Offsets()
    offsets.fetched(P0, 1)
    offsets.forget([P0])
    assert offsets.committable() == {}


def test_runs_start_oldest_first_up_to_the_free_places():
    waiting = [fetched(i) for i in range(5)]
    assert startable(waiting, {}, free=3, per_organization=10) == [0, 1, 2]


def test_an_organization_at_its_cap_lets_the_others_runs_go_past():
    waiting = [fetched(0, "noisy"), fetched(1, "noisy"), fetched(2, "quiet"), fetched(3, "noisy")]
    assert startable(waiting, {"noisy": 1}, free=10, per_organization=2) == [0, 2]


async def test_a_fast_run_fetched_after_a_slow_one_finishes_first():
    finished: list[str] = []
    release = asyncio.Event()

    async def run(request: str) -> None:
        if request == "slow":
            await release.wait()
        finished.append(request)

    flow = RunFlow(run, max_running=4, max_per_organization=4, max_waiting=4)
    flow.add([fetched(0, run_id="slow"), fetched(1, run_id="fast")])
    flow.add([fetched(2, run_id="later")])  # fetched after both
    while len(finished) < 2:
        await flow.wait_progress(1)
    assert finished == ["fast", "later"]
    assert flow.offsets.committable() == {P0: 0}  # nothing past the slow one is acknowledged
    release.set()
    while flow.running:
        await flow.wait_progress(1)
    assert finished[-1] == "slow" and flow.offsets.committable() == {P0: 3}


async def test_a_full_flow_has_no_room_to_fetch_until_a_run_ends():
    release = asyncio.Event()

    async def run(request: str) -> None:
        await release.wait()

    flow = RunFlow(run, max_running=2, max_per_organization=2, max_waiting=1)
    flow.add([fetched(i) for i in range(3)])
    assert (flow.running, flow.waiting, flow.room) == (2, 1, 0)
    release.set()
    while flow.running or flow.waiting:
        await flow.wait_progress(1)
    assert flow.room == 3 and flow.offsets.committable() == {P0: 3}


async def test_one_organizations_slow_runs_leave_places_to_another():
    started: list[str] = []
    release = asyncio.Event()

    async def run(request: str) -> None:
        started.append(request)
        await release.wait()

    flow = RunFlow(run, max_running=4, max_per_organization=2, max_waiting=8)
    flow.add([fetched(i, "noisy", run_id=f"noisy-{i}") for i in range(4)])
    flow.add([fetched(4, "quiet", run_id="quiet")])
    await asyncio.sleep(0)
    assert sorted(started) == ["noisy-0", "noisy-1", "quiet"]
    release.set()
    await flow.drain(1)


async def test_the_same_run_fetched_again_while_under_way_runs_once():
    calls: list[str] = []
    release = asyncio.Event()

    async def run(request: str) -> None:
        calls.append(request)
        await release.wait()

    flow = RunFlow(run, max_running=4, max_per_organization=4, max_waiting=4)
    flow.add([fetched(0, run_id="same")])
    flow.add([fetched(1, run_id="same")])
    release.set()
    while flow.running:
        await flow.wait_progress(1)
    assert calls == ["same"] and flow.offsets.committable() == {P0: 2}


async def test_an_invalid_request_is_acknowledged_without_a_run():
    flow = RunFlow(lambda request: asyncio.sleep(0), max_running=1, max_per_organization=1,
                   max_waiting=1)  # fmt: skip
    flow.add([Fetched(P0, 0, "", "", None)])
    assert flow.running == 0 and flow.offsets.committable() == {P0: 1}


async def test_runs_not_ended_by_the_drain_deadline_are_cancelled_and_not_acknowledged():
    async def run(request: str) -> None:
        await asyncio.Event().wait()

    flow = RunFlow(run, max_running=1, max_per_organization=1, max_waiting=1)
    flow.add([fetched(0), fetched(1)])
    await flow.drain(0.01)
    assert flow.running == 0 and flow.offsets.committable() == {P0: 0}
