"""Fanout's /readyz tells the truth about its loops (in-process, no broker: fake steps)."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError

from services.fanout.app import Fanout
from services.fanout.settings import FanoutSettings
from tests.support.polling import eventually


def fanout(**settings: object) -> Fanout:
    defaults = {"health_port": 0, "backoff_min_s": 0.001, "backoff_max_s": 0.001}
    return Fanout(FanoutSettings(**{**defaults, **settings}))


async def test_a_loop_failing_past_its_limit_is_red_with_the_reason_until_it_recovers():
    service = fanout(retry_limit=3)
    broker_back = asyncio.Event()

    async def broker_away_until_back() -> None:
        if not broker_back.is_set():
            raise KafkaConnectionError("broker away")
        await asyncio.sleep(0.001)

    loop = asyncio.create_task(service.loops.run("registry", broker_away_until_back))
    try:

        async def red() -> str:
            reason = (await service.readiness())["registry"]
            return reason if reason != "ok" else ""

        reason = await eventually(red)
        assert reason.startswith("the registry loop failed ")
        assert " times in a row: KafkaConnectionError" in reason
        broker_back.set()

        async def green() -> bool:
            return (await service.readiness())["registry"] == "ok"

        await eventually(green)
    finally:
        service.stop()
        await loop


class IdleConsumer:
    """An events consumer that holds a partition and fetches nothing."""

    def __init__(self) -> None:
        self.fetches = 0

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition("ns.events", 0)}

    async def getmany(self, timeout_ms: int, max_records: int) -> dict:
        self.fetches += 1
        return {}

    async def topics(self) -> set[str]:
        return {"roomhooks.events", "roomhooks.deliveries"}


class NoWork:
    async def start(self, batch: dict, after: object = None) -> None:
        assert batch == {} and after is None  # nothing fetched: nothing in flight


async def test_a_consumer_holding_partitions_that_stops_fetching_turns_readiness_red():
    service = fanout(fetch_stall_s=0.05)
    consumer = IdleConsumer()
    service._events = consumer  # type: ignore[assignment]
    service._processor = NoWork()  # type: ignore[assignment]
    await service.loops.consume(consumer, NoWork())  # type: ignore[arg-type]
    assert consumer.fetches == 1

    async def stalled() -> str:
        checks = await service.readiness()
        return checks["events"] if checks["events"] != "ok" else ""

    assert "the events consumer has not fetched for" in await eventually(stalled)
    await service.loops.consume(consumer, NoWork())  # type: ignore[arg-type]
    assert (await service.readiness())["events"] == "ok"
