"""Publishing room events the way a room service would, at full speed or at a fixed rate.

Every event is a `participant.joined` keyed by its room id (as `roomhooks publish` does),
with the publish time in `room.bench_sent_us` (Unix µs, this machine's clock) so the receiver
can tell publish-to-receipt latency. Room objects keep unknown fields, so the marker reaches
the customer body unchanged.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer

from shared.kafka import JSON_HEADERS, dumps, make_producer
from shared.settings import KafkaSettings

EVENT = "participant.joined"
# Events handed to the producer before their acks are awaited (full-speed publishing).
CHUNK = 500


@dataclass(frozen=True)
class Target:
    """One (organization, room) that a webhook listens on; `healthy`: its endpoint answers."""

    organization_id: str
    room_id: str
    healthy: bool = True


def event_bytes(target: Target, *, sent_us: int, event_id: str | None = None) -> bytes:
    return dumps(
        {
            "id": event_id or str(uuid.uuid4()),
            "event": EVENT,
            "timestamp": datetime.now(UTC).isoformat(),
            "organization_id": target.organization_id,
            "room": {"id": target.room_id, "name": "Standup", "bench_sent_us": sent_us},
            "user": {"id": "user-001", "name": "Ada", "token": "never-forwarded"},
        }
    )


def now_us() -> int:
    return time.time_ns() // 1000


@dataclass
class Published:
    events: int = 0
    healthy: int = 0


class EventPublisher:
    """An aiokafka producer on `<ns>.events`, as a room service would hold one."""

    def __init__(self, kafka: KafkaSettings, topic: str, *, linger_ms: int = 5) -> None:
        self._producer: AIOKafkaProducer = make_producer(
            kafka, linger_ms=linger_ms, max_batch_size=256 * 1024
        )
        self._topic = topic
        self.published = Published()

    async def __aenter__(self) -> EventPublisher:
        await self._producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._producer.stop()

    async def send(self, target: Target, *, event_id: str | None = None) -> asyncio.Future:
        ack = await self._producer.send(
            self._topic,
            value=event_bytes(target, sent_us=now_us(), event_id=event_id),
            key=target.room_id.encode(),
            headers=JSON_HEADERS,
        )
        self.published.events += 1
        self.published.healthy += target.healthy
        return ack

    async def saturate(
        self,
        targets: Sequence[Target],
        *,
        received: Callable[[], int],
        lead: int,
        stop: asyncio.Event,
    ) -> None:
        """Publish round-robin over `targets` as fast as the broker acknowledges, keeping at
        most `lead` healthy events ahead of what the receiver has seen (so the pipeline is
        always full but the backlog stays bounded and drains in seconds)."""
        n = 0
        in_flight: list[asyncio.Future] = []
        while not stop.is_set():
            room = lead - (self.published.healthy - received())
            if room <= 0:
                await asyncio.sleep(0.005)
                continue
            acks = []
            for _ in range(min(CHUNK, room)):
                acks.append(await self.send(targets[n % len(targets)]))
                n += 1
            if in_flight:
                await asyncio.gather(*in_flight)
            in_flight = acks
            await asyncio.sleep(0)
        if in_flight:
            await asyncio.gather(*in_flight)

    async def at_rate(
        self, targets: Sequence[Target], *, rate: float, duration_s: float
    ) -> tuple[float, float]:
        """Publish `rate` events/s for `duration_s`; returns (first, last) send time (Unix s)."""
        started = time.monotonic()
        first = time.time()
        acks: list[asyncio.Future] = []
        sent = 0
        while (elapsed := time.monotonic() - started) < duration_s:
            due = min(int(elapsed * rate) + 1, int(duration_s * rate))
            while sent < due:
                acks.append(await self.send(targets[sent % len(targets)]))
                sent += 1
            if len(acks) > 2 * CHUNK:
                done = [a for a in acks if a.done()]
                await asyncio.gather(*done)
                acks = [a for a in acks if not a.done()]
            await asyncio.sleep(0.001)
        last = time.time()
        await asyncio.gather(*acks)
        return first, last
