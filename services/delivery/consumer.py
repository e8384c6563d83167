"""The delivery request consumer: fetch, store durably, set the bad aside, then attempt and
commit.

At-least-once: a batch's offsets are committed only once every request in it is stored (or
its record acknowledged by the DLQ); an outage in between rewinds the batch, which is read
again (storing is idempotent). The attempts start as soon as their deliveries are stored,
before the commit's round trip to the broker: a batch read again stores nothing new, so
nothing is attempted twice for it. Fetching waits while the lanes are full (backpressure).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Annotated

import structlog
from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from opentelemetry.trace import Span, SpanKind
from pydantic import Field, TypeAdapter, ValidationError

from services.delivery.lanes import Lanes
from services.delivery.rows import Job
from services.delivery.service import DeliveryService, Request
from shared.dead_letters import send_dead_letter
from shared.failures import PoisonCounter, describe, is_content_error
from shared.kafka import ServiceConsumer, offsets_after, read_again
from shared.messages import DeliveryRequested, RecoverRequested, RedeliverRequested
from shared.readiness import FetchWatch, RetryWatch
from shared.tracing import NO_TRACING, Tracing, parent_from_headers, traceparent_of

log = structlog.get_logger(__name__)

# By `type`: an invalid request's errors are those of the one model it claims to be.
_REQUEST = TypeAdapter(
    Annotated[
        DeliveryRequested | RedeliverRequested | RecoverRequested, Field(discriminator="type")
    ]
)
# A fetched record set aside for the dead letters, why, and its kind (for the poison metric).
Dead = tuple[TopicPartition, ConsumerRecord, str, str]


class RequestConsumer:
    """Consumes the deliveries topic into `service` until `stopping` is set; `run()` is the
    loop, its watches (`retries`, `fetching()`) feed /readyz."""

    def __init__(
        self,
        consumer: ServiceConsumer,
        service: DeliveryService,
        lanes: Lanes,
        *,
        producer: AIOKafkaProducer,
        dlq_topic: str,
        poison: PoisonCounter,
        stopping: asyncio.Event,
        retry_limit: int,
        fetch_stall_s: float,
        tracing: Tracing = NO_TRACING,
    ):
        self._tracing = tracing
        self._consumer = consumer
        self._service = service
        self._lanes = lanes
        self._producer = producer
        self._dlq_topic = dlq_topic
        self._poison = poison
        self._stopping = stopping
        self.retries = RetryWatch("request consumer", retry_limit)
        self._fetches = FetchWatch("request consumer", fetch_stall_s)
        self._waiting_for_room = False

    def fetching(self, *, now: float, assigned: bool) -> str:
        """ "ok", or how long an assigned consumer has not fetched."""
        # Waiting for room in the lanes is backpressure, not a stall: the lanes are busy.
        return self._fetches.check(now=now, has_work=assigned and not self._waiting_for_room)

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.consume_batch()
                self.retries.succeeded()
            except Exception as exc:  # noqa: BLE001 - this loop's top-level catch: log, back off
                # Only outages get here (content errors are set aside below): the same batch
                # is read again, and /readyz turns red once that has failed too often.
                self.retries.failed(describe(exc))
                log.warning("delivery.consume_failed", error=repr(exc)[:500])
                await asyncio.sleep(1)

    async def consume_batch(self) -> None:
        """Fetch, store durably, set malformed or unstorable requests aside on the DLQ, then
        start the attempts and commit the offsets: never commit before storing.

        A bad record goes to the DLQ once in the normal course: its offset is committed right
        after the DLQ acknowledged it (an outage in between rewinds the batch and sends it
        again: at-least-once, like everything here).
        """
        consumer = self._consumer
        self._waiting_for_room = True
        try:
            await self._lanes.wait_for_room()
        finally:
            self._waiting_for_room = False
        batches = await consumer.getmany(timeout_ms=500)
        self._fetches.fetched(now=time.monotonic())
        if not batches:
            return
        parsed: list[tuple[Request, TopicPartition, ConsumerRecord]] = []
        dead: list[Dead] = []
        for tp, records in batches.items():
            for record in records:
                try:
                    parsed.append((_REQUEST.validate_json(record.value or b""), tp, record))
                except (ValidationError, ValueError, RecursionError) as exc:
                    reason = f"invalid delivery request: {_reasons(exc)}"
                    dead.append((tp, record, reason, "invalid_request"))
        spans = self._request_spans(parsed) if self._tracing.enabled else {}
        try:
            jobs, refused = await self.store(parsed, _traces(spans))
            dead += refused
            await self.dead_letter(dead)
            # Stored: the attempts need not wait for the commit (read again, the batch
            # stores nothing new and so returns no job).
            await self._service.submit(jobs)
            await consumer.commit(offsets_after(batches))
        except BaseException:
            # Not stored or not committed: read the same messages again.
            read_again(consumer, batches)
            raise
        finally:
            for span in spans.values():
                span.end()
        for _, _, _, kind in dead:  # counted once committed: a rewound batch counts nothing
            self._poison.inc(kind)

    def _request_spans(
        self, parsed: list[tuple[Request, TopicPartition, ConsumerRecord]]
    ) -> dict[str, Span]:
        """A span per delivery request, under fanout's span (the record's `traceparent`):
        by delivery id. Its context is stored with the delivery, for every attempt."""
        spans = {}
        for message, _, record in parsed:
            if isinstance(message, DeliveryRequested):
                spans[message.delivery_id] = self._tracing.start(
                    "delivery request",
                    parent=parent_from_headers(record.headers),
                    kind=SpanKind.CONSUMER,
                    attributes={
                        "messaging.system": "kafka",
                        "messaging.destination.name": record.topic,
                        "roomhooks.delivery_id": message.delivery_id,
                        "roomhooks.webhook_id": message.webhook_id,
                        "roomhooks.event_id": message.event_id,
                    },
                )
        return spans

    async def store(
        self,
        parsed: list[tuple[Request, TopicPartition, ConsumerRecord]],
        traces: Mapping[str, str] | None = None,
    ) -> tuple[list[Job], list[Dead]]:
        """Store the requests in one transaction (with their `traces`, by delivery id); when
        Postgres refuses the batch for its content, in halves down to the requests it
        refuses, which are set aside (an outage raises: the batch is read again)."""
        try:
            return await self._service.accept([message for message, _, _ in parsed], traces), []
        except Exception as exc:
            if not is_content_error(exc):
                raise
            if len(parsed) == 1:
                [(_, tp, record)] = parsed
                reason = f"delivery request not storable: {describe(exc)}"
                return [], [(tp, record, reason, "unstorable_request")]
            log.warning("delivery.store_refused", error=describe(exc), batch=len(parsed))
        middle = len(parsed) // 2
        first = await self.store(parsed[:middle], traces)
        second = await self.store(parsed[middle:], traces)
        return first[0] + second[0], first[1] + second[1]

    async def dead_letter(self, dead: list[Dead]) -> None:
        """Send each record to the DLQ as received, with its reason; wait for every ack."""
        if not dead:
            return
        acks = []
        for tp, record, reason, _ in dead:
            log.error(
                "delivery.request_dead_lettered",
                topic=tp.topic,
                partition=tp.partition,
                offset=record.offset,
                reason=reason[:300],
            )
            acks.append(await send_dead_letter(self._producer, self._dlq_topic, record, reason))
        await asyncio.gather(*acks)


def _traces(spans: Mapping[str, Span]) -> dict[str, str]:
    """Each request span's traceparent, by delivery id (what is stored with the delivery)."""
    return {d: t for d, span in spans.items() if (t := traceparent_of(span)) is not None}


def _reasons(exc: Exception) -> str:
    """The first few validation errors as `field: message`; other errors as they say."""
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False)[:3]
        )
    return describe(exc)
