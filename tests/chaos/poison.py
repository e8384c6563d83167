"""Malformed input for the poison scenario, and the check that each piece reached the DLQ with its
reason.

Every bad message has its own key (`poison-<kind>-<n>`); the DLQ keeps the key as received, so
each can be found again and its `rh-error` compared with the reason expected for its kind.
A few malformed delivery requests go to `<ns>.deliveries` too: delivery must set them aside
(in `<ns>.deliveries.dlq`, which hostile_tenants.py checks) and keep delivering.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition

from shared.dead_letters import H_ERROR, H_TOPIC
from shared.kafka import JSON_HEADERS, Topics, make_consumer
from shared.settings import KafkaSettings

TIMESTAMP = "2026-12-01T00:00:00.000Z"
ROOM = {"id": "poison-room", "name": "Poison"}
USER = {"id": "user-1", "name": "Ada"}


def _event(**fields: Any) -> bytes:
    doc = {
        "id": "poison",
        "event": "participant.joined",
        "timestamp": TIMESTAMP,
        "organization_id": "org-poison",
        "room": ROOM,
        "user": USER,
    } | fields
    return json.dumps({k: v for k, v in doc.items() if v is not None}).encode()


# kind -> (the bad bytes for message n, a fragment its DLQ reason must contain)
KINDS: dict[str, tuple[Callable[[int], bytes], str]] = {
    "not_json": (lambda n: b'{"id": "poison-%d", ' % n, "not JSON"),
    "not_utf8": (lambda n: b"\xff\xfe" + str(n).encode(), "not valid UTF-8"),
    "not_object": (lambda n: b"[%d]" % n, "must be a JSON object"),
    "wrong_type": (lambda n: _event(id=f"p{n}", organization_id=n), "organization_id"),
    "unknown_event": (lambda n: _event(id=f"p{n}", event="participant.exploded"), "unknown"),
    "missing_organization": (lambda n: _event(id=f"p{n}", organization_id=None), "organization"),
    "missing_user": (lambda n: _event(id=f"p{n}", user=None), "user"),
    "empty": (lambda n: b"", "empty"),
}
OVERSIZE = (lambda n: _event(id=f"p{n}", padding="x" * 1_000_100), "too large")


@dataclass
class Verdict:
    expected: int
    found: int = 0
    wrong_reason: list[str] = field(default_factory=list)
    wrong_origin: int = 0
    reasons: dict[str, str] = field(default_factory=dict)  # one sample reason per kind
    failures: list[str] = field(default_factory=list)

    @property
    def missing(self) -> int:
        return self.expected - self.found

    def as_json(self) -> dict[str, Any]:
        return {
            "expected": self.expected,
            "found": self.found,
            "missing": self.missing,
            "wrong_reason": self.wrong_reason[:10],
            "wrong_origin": self.wrong_origin,
            "sample_reasons": self.reasons,
        }


@dataclass
class PoisonBatch:
    count: int
    oversize_every: int
    # key -> the fragment its reason must contain
    expected: dict[str, str] = field(default_factory=dict)
    bad_requests: int = 0

    def messages(self) -> list[tuple[str, bytes]]:
        kinds = list(KINDS.items())
        out = []
        for n in range(self.count):
            if self.oversize_every and n % self.oversize_every == self.oversize_every - 1:
                kind, (make, reason) = "oversize", OVERSIZE
            else:
                kind, (make, reason) = kinds[n % len(kinds)]
            key = f"poison-{kind}-{n}"
            self.expected[key] = reason
            out.append((key, make(n)))
        return out

    async def publish(
        self,
        producer: AIOKafkaProducer,
        topics: Topics,
        *,
        rate: float,
        progress: Callable[[str], None],
    ) -> None:
        """Send every bad message at `rate`/s, plus one malformed delivery request per 100."""
        started = time.monotonic()
        acks: list[asyncio.Future] = []
        for n, (key, value) in enumerate(self.messages()):
            while (time.monotonic() - started) * rate < n:
                await asyncio.sleep(0.005)
            acks.append(await producer.send(topics.events, value, key=key.encode()))
            if n % 100 == 0:
                acks.append(await _bad_request(producer, topics, n))
                self.bad_requests += 1
            if len(acks) >= 200:
                await asyncio.gather(*acks)
                acks = []
                progress(f"{n + 1:,}/{self.count:,} bad messages sent")
        await asyncio.gather(*acks)

    def judge(self, letters: dict[str, tuple[str, str]]) -> Verdict:
        """`letters`: DLQ key -> (rh-error, rh-topic)."""
        verdict = Verdict(expected=len(self.expected))
        for key, fragment in self.expected.items():
            if key not in letters:
                continue
            verdict.found += 1
            reason, origin = letters[key]
            kind = key.rsplit("-", 1)[0].removeprefix("poison-")
            verdict.reasons.setdefault(kind, reason[:200])
            if fragment not in reason:
                verdict.wrong_reason.append(f"{key}: {reason[:120]!r} lacks {fragment!r}")
            if not origin.endswith(".events"):
                verdict.wrong_origin += 1
        if verdict.missing:
            lost = sorted(k for k in self.expected if k not in letters)[:20]
            verdict.failures.append(f"{verdict.missing} bad messages are not in the DLQ: {lost}")
        if verdict.wrong_reason:
            verdict.failures.append(
                f"{len(verdict.wrong_reason)} DLQ entries give the wrong reason"
            )
        if verdict.wrong_origin:
            verdict.failures.append(f"{verdict.wrong_origin} DLQ entries name the wrong topic")
        return verdict


async def _bad_request(producer: AIOKafkaProducer, topics: Topics, n: int) -> asyncio.Future:
    """A delivery request whose ids are not UUIDs (fanout never writes one)."""
    value = json.dumps(
        {
            "type": "delivery_requested",
            "delivery_id": f"not-a-uuid-{n}",
            "webhook_id": "nope",
            "organization_id": "nope",
            "event_id": f"p{n}",
            "event": "participant.joined",
            "body": "{}",
            "created_at": TIMESTAMP,
        }
    ).encode()
    return await producer.send(topics.deliveries, value, key=b"nope", headers=JSON_HEADERS)


async def read_dead_letters(
    kafka: KafkaSettings, topics: Topics, *, wanted: int, idle_s: float = 15.0
) -> dict[str, tuple[str, str]]:
    """Every DLQ entry from the beginning, by key: (rh-error, rh-topic). Stops once `wanted`
    entries were read or nothing new came for `idle_s`."""
    consumer = make_consumer(kafka, group_id=None, max_partition_fetch_bytes=4 * 1024 * 1024)
    await consumer.start()
    letters: dict[str, tuple[str, str]] = {}
    try:
        await consumer.topics()  # fetches the cluster's metadata
        partitions = consumer.partitions_for_topic(topics.events_dlq) or set()
        assigned = [TopicPartition(topics.events_dlq, p) for p in partitions]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        last_new = time.monotonic()
        while len(letters) < wanted and time.monotonic() - last_new < idle_s:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    headers = {k: v.decode("utf-8", "replace") for k, v in record.headers}
                    key = (record.key or b"").decode("utf-8", "replace")
                    letters[key] = (headers.get(H_ERROR, ""), headers.get(H_TOPIC, ""))
                    last_new = time.monotonic()
    finally:
        await consumer.stop()
    return letters
