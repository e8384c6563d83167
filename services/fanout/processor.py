"""One batch of `<ns>.events` -> delivery requests, workflow run requests and DLQ entries ->
committed offsets.

Acknowledge only durable work: every record a batch produces is sent, all the broker's acks
are awaited, and only then are the batch's offsets committed. If anything fails, nothing is
committed and the consumer is rewound to the batch's first offsets, so the batch is routed
again (at-least-once; the delivery service dedupes on `delivery_id`, the workflow runner on
`run_id`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import IllegalStateError, MessageSizeTooLargeError
from pydantic import BaseModel

from services.fanout.index import Subscriptions
from services.fanout.metrics import FanoutMetrics
from services.fanout.routing import Rejected, Routed, reason_class, route
from shared.dead_letters import dlq_headers
from shared.kafka import JSON_HEADERS, Topics

log = structlog.get_logger(__name__)

Batch = Mapping[TopicPartition, Sequence[ConsumerRecord]]


@dataclass
class _Produced:
    """What one batch handed to the producer: the acks to await and what to count after."""

    acks: list[asyncio.Future] = field(default_factory=list)
    requests: int = 0
    runs: int = 0
    rejected: list[str] = field(default_factory=list)


class BatchProcessor:
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        topics: Topics,
        indexes: Subscriptions,
        metrics: FanoutMetrics,
        clock: Callable[[], datetime],
    ) -> None:
        self._consumer = consumer
        self._producer = producer
        self._topics = topics
        self._indexes = indexes
        self._metrics = metrics
        self._clock = clock

    async def process(self, batch: Batch) -> None:
        """Route, produce, await every ack, commit. On failure rewind the batch and raise."""
        if not batch:
            return
        started = time.perf_counter()
        try:
            produced = await self._produce(batch)
            await asyncio.gather(*produced.acks)
            await self._consumer.commit({tp: ms[-1].offset + 1 for tp, ms in batch.items() if ms})
        except BaseException:
            self.rewind(batch)
            raise
        self._metrics.events_consumed.inc(sum(len(ms) for ms in batch.values()))
        self._metrics.requests_emitted.inc(produced.requests)
        self._metrics.runs_emitted.inc(produced.runs)
        for label in produced.rejected:
            self._metrics.dlq_entries.labels(label).inc()
        self._metrics.batch_seconds.observe(time.perf_counter() - started)

    def rewind(self, batch: Batch) -> None:
        """Seek back to the batch's first offsets so its records are fetched again."""
        for tp, messages in batch.items():
            if not messages:
                continue
            try:
                self._consumer.seek(tp, messages[0].offset)
            except IllegalStateError:
                pass  # revoked meanwhile: its next owner resumes from the committed offset

    async def _produce(self, batch: Batch) -> _Produced:
        now = self._clock()
        produced = _Produced()
        for messages in batch.values():
            for message in messages:
                outcome = route(message.value, self._indexes, now=now)
                if isinstance(outcome, Routed):
                    try:
                        await self._send_routed(outcome, produced)
                        continue
                    except MessageSizeTooLargeError:
                        # Permanent: the same event would block its partition forever.
                        outcome = Rejected("producer: request exceeds max_request_size")
                produced.rejected.append(reason_class(outcome.reason))
                produced.acks.append(await self._dead_letter(message, outcome.reason))
        return produced

    async def _send_routed(self, outcome: Routed, produced: _Produced) -> None:
        for request in outcome.requests:
            produced.acks.append(
                await self._send(self._topics.deliveries, request.webhook_id, request)
            )
            produced.requests += 1
        for run in outcome.runs:
            produced.acks.append(await self._send(self._topics.workflow_runs, run.workflow_id, run))
            produced.runs += 1

    async def _send(self, topic: str, key: str, message: BaseModel) -> asyncio.Future:
        return await self._producer.send(
            topic,
            value=message.model_dump_json().encode(),  # in Rust; bytes as shared.kafka.dumps
            key=key.encode("utf-8"),
            headers=JSON_HEADERS,
        )

    async def _dead_letter(self, message: ConsumerRecord, reason: str) -> asyncio.Future:
        log.warning(
            "fanout.event_rejected",
            reason=reason,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
        )
        headers = dlq_headers(
            reason,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            original=message.headers or (),
        )
        return await self._producer.send(
            self._topics.events_dlq, value=message.value, key=message.key, headers=headers
        )
