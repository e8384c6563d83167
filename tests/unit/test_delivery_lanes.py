"""Lanes bound concurrency overall and per webhook, and refuse past a webhook's backlog."""

from __future__ import annotations

import asyncio
import uuid

from services.delivery.lanes import Lanes

SLOW, FAST = uuid.uuid4(), uuid.uuid4()


def lanes(**overrides) -> Lanes:
    options = {
        "max_in_flight": 4,
        "per_webhook_concurrency": 2,
        "per_webhook_backlog": 3,
        "max_admitted": 10,
    }
    return Lanes(**(options | overrides))


async def test_a_webhook_runs_at_most_its_concurrency_at_once():
    lane, running, peak, gate = lanes(), 0, 0, asyncio.Event()

    async def work():
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await gate.wait()
        running -= 1

    tasks = []
    for _ in range(3):
        assert lane.try_admit(SLOW)
        tasks.append(asyncio.create_task(lane.run(SLOW, work)))
    await asyncio.sleep(0.01)
    assert peak == 2
    gate.set()
    await asyncio.gather(*tasks)
    assert lane.admitted == 0


async def test_a_full_backlog_refuses_more_of_that_webhook_but_not_others():
    lane, gate = lanes(), asyncio.Event()
    tasks = []
    for _ in range(3):
        assert lane.try_admit(SLOW)
        tasks.append(asyncio.create_task(lane.run(SLOW, gate.wait)))
    assert not lane.try_admit(SLOW)
    assert lane.saturated() == [SLOW]
    done = asyncio.Event()

    async def fast():
        done.set()

    assert lane.try_admit(FAST)
    await lane.run(FAST, fast)
    assert done.is_set()  # the stuck webhook held no global slot the fast one needed
    gate.set()
    await asyncio.gather(*tasks)


async def test_waiting_deliveries_of_a_stuck_webhook_hold_no_global_slot():
    lane, gate = (
        lanes(max_in_flight=2, per_webhook_concurrency=1, per_webhook_backlog=5),
        asyncio.Event(),
    )
    tasks = []
    for _ in range(5):
        assert lane.try_admit(SLOW)
        tasks.append(asyncio.create_task(lane.run(SLOW, gate.wait)))
    await asyncio.sleep(0.01)
    ran = asyncio.Event()

    async def fast():
        ran.set()

    assert lane.try_admit(FAST)
    await asyncio.wait_for(lane.run(FAST, fast), timeout=1)
    assert ran.is_set()
    gate.set()
    await asyncio.gather(*tasks)


async def test_room_shrinks_as_work_is_admitted_and_returns_when_it_ends():
    lane, gate = lanes(max_admitted=2), asyncio.Event()
    a, b = uuid.uuid4(), uuid.uuid4()
    assert lane.try_admit(a) and lane.try_admit(b)
    assert lane.room() == 0
    tasks = [asyncio.create_task(lane.run(w, gate.wait)) for w in (a, b)]
    waiter = asyncio.create_task(lane.wait_for_room())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    gate.set()
    await asyncio.gather(*tasks)
    await asyncio.wait_for(waiter, timeout=1)
    assert lane.room() == 2


async def test_a_webhook_that_stops_answering_runs_one_attempt_at_a_time():
    lane = lanes(per_webhook_concurrency=4, per_webhook_backlog=10)
    for _ in range(3):
        lane.report(SLOW, answered=False)
    assert lane.concurrency(SLOW) == 1
    assert lane.concurrency(FAST) == 4
    running, peak, gate = 0, 0, asyncio.Event()

    async def work():
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await gate.wait()
        running -= 1

    tasks = []
    for _ in range(4):
        assert lane.try_admit(SLOW)
        tasks.append(asyncio.create_task(lane.run(SLOW, work)))
    await asyncio.sleep(0.01)
    assert peak == 1

    lane.report(SLOW, answered=True)  # it answered: full concurrency again, at once
    await asyncio.sleep(0.01)
    assert peak == 4 and lane.concurrency(SLOW) == 4
    gate.set()
    await asyncio.gather(*tasks)


def test_one_failure_or_an_answer_between_failures_does_not_degrade():
    lane = lanes()
    lane.report(SLOW, answered=False)
    lane.report(SLOW, answered=False)
    lane.report(SLOW, answered=True)
    lane.report(SLOW, answered=False)
    assert lane.concurrency(SLOW) == lane.per_webhook_concurrency


def test_a_webhook_is_degraded_only_after_its_network_failures_in_a_row():
    lane = lanes()
    for _ in range(lane.degraded_after - 1):
        lane.report(SLOW, answered=False)
    assert not lane.degraded(SLOW)
    lane.report(SLOW, answered=False)
    assert lane.degraded(SLOW) and not lane.degraded(FAST)
    lane.report(SLOW, answered=True)
    assert not lane.degraded(SLOW)
