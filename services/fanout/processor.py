"""One batch of `<ns>.events` -> delivery requests, workflow run requests and DLQ entries ->
committed offsets.

Acknowledge only durable work: every record a batch produces is sent, all the broker's acks
are awaited and the batch's event log entries written (one insert), and only then are the
batch's offsets committed. If anything fails, nothing is committed and the consumer is rewound
to the batch's first offsets, so the batch is routed again (at-least-once; the delivery
service dedupes on `delivery_id`, the workflow runner on `run_id`, the event log on its row
id, each beside the record's stamp, which a re-read repeats: stamps.py). Only the broker's
and Postgres's failures fail a batch: what fails for one event's content (parsing, routing, a
record too large) sends that event to the DLQ once, and the batch goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import structlog
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import MessageSizeTooLargeError
from opentelemetry.trace import Span, SpanKind, StatusCode
from pydantic import BaseModel, ValidationError

from services.fanout import event_log
from services.fanout.batches import Headers, RecordBatches, RecordSink, SendEach
from services.fanout.event_log import LoggedEvent, ReadFrom
from services.fanout.index import Subscriptions
from services.fanout.metrics import FanoutMetrics
from services.fanout.routing import Rejected, Routed, request_values, route
from services.fanout.stamps import record_stamp
from shared.dead_letters import send_dead_letter
from shared.failures import describe, is_content_error
from shared.kafka import JSON_HEADERS, Topics, offsets_after, read_again
from shared.kafka.fences import Batch
from shared.messages import EventPosition
from shared.tracing import NO_TRACING, Tracing, headers_with, parent_from_headers

log = structlog.get_logger(__name__)


# Routing a batch is all CPU: without a pause the loop runs nothing else meanwhile, and the
# batch in flight's I/O (the event log's insert, then its connection's reset; the producer's
# request and its acks) only moves once the batch is routed, so finishing it waited for round
# trips that could have run during the routing (the fan-out bench: ~6 ms a 500-event batch,
# an eighth of the cycle). A pause every this many events lets them run, for ~2.3 us of CPU
# each (0.05 us an event).
EVENTS_BETWEEN_PAUSES = 50


class ConsumedOffsets(Protocol):
    """The events consumer's positions: `commit` makes the group resume each partition at
    the offset given (durable once it returns); `rewind` makes the next fetch of a partition
    start at a batch's first offset again (unless a rebalance moved the partition on:
    shared/kafka/fences.py)."""

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None: ...

    def rewind(self, partition: TopicPartition, offset: int) -> None: ...


class EventLogWriter(Protocol):
    """Where the event log's entries go: `record` returns once every entry is durable, and
    keeps the first of two entries with the same id (a re-read batch records nothing new)."""

    async def record(self, entries: Sequence[LoggedEvent]) -> None: ...


@dataclass
class _Produced:
    """What one batch handed to the producer: the acks to await and what to count after."""

    acks: list[asyncio.Future] = field(default_factory=list)
    requests: int = 0
    runs: int = 0
    rejected: list[str] = field(default_factory=list)
    logged: list[LoggedEvent] = field(default_factory=list)


@dataclass
class InFlight:
    """A batch routed and produced: `done` awaits its acks and event log write, then the
    commit of the batch before it (when one was in flight), then commits its own offsets.
    It runs meanwhile; `finish` awaits it."""

    batch: Batch
    produced: _Produced
    done: asyncio.Future
    started: float


@dataclass
class _Records:
    """What one routed event produces: (topic, key, value) each, and how many of each kind."""

    records: list[tuple[str, bytes, bytes]]
    requests: int
    runs: int
    routed: Routed


def _record(topic: str, key: str, message: BaseModel) -> tuple[str, bytes, bytes]:
    # The model's serializer runs in Rust; the bytes are what shared.kafka.dumps would give,
    # and model_dump_json().encode() (which costs 3.1 us a request to this 1.8: its keyword
    # handling, then a str decoded and encoded again).
    return topic, key.encode("utf-8"), type(message).__pydantic_serializer__.to_json(message)


def _append(entries: list[LoggedEvent], entry: LoggedEvent | None) -> None:
    if entry is not None:
        entries.append(entry)


def _reason(exc: Exception) -> str:
    """Why routing failed, naming fields but never their values (a DLQ header, a log line)."""
    if isinstance(exc, ValidationError):
        errors = exc.errors(include_url=False, include_input=False)
        where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
        return f"{exc.title}: {where}"
    return describe(exc)


def _end_event_span(span: Span, decided: _Records | Rejected, refused: Rejected | None) -> None:
    """What became of the event, on its span: routed (ids and counts) or refused (why)."""
    if isinstance(decided, _Records):
        routed = decided.routed
        span.set_attribute("roomhooks.event_id", routed.event_id)
        span.set_attribute("roomhooks.event", routed.event)
        span.set_attribute("roomhooks.organization_id", routed.organization_id)
        span.set_attribute("roomhooks.delivery_requests", decided.requests)
        span.set_attribute("roomhooks.run_requests", decided.runs)
    if refused is not None:
        span.set_attribute("roomhooks.dead_letter", refused.kind)
        span.set_status(StatusCode.ERROR, refused.reason[:300])
    span.end()


class BatchProcessor:
    """Routes a fetched batch, produces its records, awaits every ack, commits (see above)."""

    def __init__(
        self,
        consumer: ConsumedOffsets,
        producer: RecordSink,
        topics: Topics,
        indexes: Subscriptions,
        metrics: FanoutMetrics,
        clock: Callable[[], datetime],
        *,
        events: EventLogWriter,
        retention: timedelta,
        tracing: Tracing = NO_TRACING,
        batches: Callable[[], RecordBatches] | None = None,
    ) -> None:
        """`clock` stands in for a record's timestamp only where that is unusable; `retention`
        (ROOMHOOKS_RETENTION_DAYS) says how old one may be (stamps.py). With `tracing` on,
        each event gets a span (under the producer's `traceparent`, shared/tracing.py) whose
        context goes on every record it makes. `batches` gives what a batch's records are
        handed over through (one per batch); by default each is sent with `producer.send`
        (dead letters always are)."""
        self._batches = batches or (lambda: SendEach(producer))
        self._tracing = tracing
        self._consumer = consumer
        self._retention = retention
        self._events = events
        self._producer = producer
        self._topics = topics
        self._indexes = indexes
        self._metrics = metrics
        self._clock = clock

    async def process(self, batch: Batch) -> None:
        """Route, produce, await every ack and the event log's write, commit. On failure
        rewind the batch and raise."""
        flight = await self.start(batch)
        if flight is not None:
            await self.finish(flight)

    async def start(self, batch: Batch, after: InFlight | None = None) -> InFlight | None:
        """Route and produce the batch, and start its event log write and then its commit
        (after `after`'s, the batch in flight before it; not at all if that one fails); None
        for no records. On failure rewind the batch and raise."""
        if not any(batch.values()):
            return None
        started = time.perf_counter()
        try:
            produced = await self._produce(batch)
        except BaseException:
            self.rewind(batch)
            raise
        durable = asyncio.gather(*produced.acks, self._events.record(produced.logged))
        done = asyncio.ensure_future(self._commit_when_durable(batch, durable, after))
        return InFlight(batch, produced, done, started)

    async def _commit_when_durable(
        self, batch: Batch, durable: asyncio.Future, after: InFlight | None
    ) -> None:
        # Committed in the background, while the next batch is routed: the commit's round
        # trip no longer holds the loop up. Offsets go in the order the batches were read.
        await durable
        if after is not None:
            await after.done
        await self._consumer.commit(offsets_after(batch))

    async def finish(self, flight: InFlight) -> None:
        """Await the batch's acks, event log write and commit. On failure rewind the batch
        and raise."""
        batch, produced = flight.batch, flight.produced
        try:
            await flight.done
        except BaseException:
            self.rewind(batch)
            raise
        self._metrics.events_consumed.inc(sum(len(ms) for ms in batch.values()))
        self._metrics.requests_emitted.inc(produced.requests)
        self._metrics.runs_emitted.inc(produced.runs)
        for kind in produced.rejected:
            self._metrics.dlq_entries.labels(kind).inc()
            self._metrics.poison.inc(kind)
        self._metrics.batch_seconds.observe(time.perf_counter() - flight.started)

    async def abandon(self, flight: InFlight) -> None:
        """Give up a started batch: wait its work out (whatever it raises) and rewind it, so
        it is routed again (its offsets are committed only if its work and every earlier
        batch's were through: re-reading durable work is harmless)."""
        with contextlib.suppress(BaseException):
            await flight.done
        self.rewind(flight.batch)

    def rewind(self, batch: Batch) -> None:
        """Seek back to the batch's first offsets so its records are fetched again."""
        read_again(self._consumer, batch)

    async def _produce(self, batch: Batch) -> _Produced:
        now = self._clock()
        oldest = now - self._retention
        produced = _Produced()
        records = self._batches()
        until_pause = EVENTS_BETWEEN_PAUSES
        for messages in batch.values():
            for message in messages:
                until_pause -= 1
                if not until_pause:
                    until_pause = EVENTS_BETWEEN_PAUSES
                    await asyncio.sleep(0)  # the I/O of the batch in flight (above)
                # The same on every read of the record (stamps.py).
                stamp = record_stamp(message.timestamp, now=now, oldest=oldest)
                # Off, no span is made: one test per event is all tracing costs.
                span = self._event_span(message) if self._tracing.enabled else None
                decided = outcome = self._decide(message, stamp, oldest)
                if isinstance(decided, _Records):
                    headers = JSON_HEADERS if span is None else headers_with(JSON_HEADERS, span)
                    outcome = await self._send(decided, records, produced, headers)
                if outcome is not None:
                    await self._refuse(message, outcome, produced, stamp)
                if span is not None:
                    _end_event_span(span, decided, outcome)
        produced.acks.extend(await records.flush())
        return produced

    def _event_span(self, message: ConsumerRecord) -> Span:
        """The event's span: a child of the producer's span when its record names one (the
        sampling is ours all the same: shared/tracing.py), else a new trace's root."""
        return self._tracing.start(
            "fanout event",
            parent=parent_from_headers(message.headers),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": message.topic,
                "messaging.destination.partition.id": str(message.partition),
                "messaging.kafka.offset": message.offset,
            },
        )

    async def _send(
        self, records: _Records, batches: RecordBatches, produced: _Produced, headers: Headers
    ) -> Rejected | None:
        """Hand one event's records over, or say why the event is refused."""
        try:
            for topic, key, value in records.records:
                await batches.add(topic, key, value, headers)
        except MessageSizeTooLargeError:
            # Permanent: the same event would block its partition forever.
            return Rejected("producer: request exceeds max_request_size", "unproducible")
        produced.requests += records.requests
        produced.runs += records.runs
        _append(produced.logged, event_log.accepted(records.routed))
        return None

    async def _refuse(
        self,
        message: ConsumerRecord,
        rejected: Rejected,
        produced: _Produced,
        stamp: datetime,
    ) -> None:
        """Send the event to the DLQ, and to the event log when its organization is readable."""
        produced.rejected.append(rejected.kind)
        produced.acks.append(await self._dead_letter(message, rejected.reason))
        read_from = ReadFrom(message.topic, message.partition, message.offset, message.timestamp)
        entry = event_log.rejected(message.value, rejected.reason, read_from=read_from, stamp=stamp)
        _append(produced.logged, entry)

    def _decide(
        self, message: ConsumerRecord, stamp: datetime, oldest: datetime
    ) -> _Records | Rejected:
        """The records one event makes, serialized, or why it goes to the DLQ. Whatever
        routing or serializing raises rejects this event: both are pure, so the same bytes
        would fail the same way on every retry of the batch."""
        try:
            outcome = route(
                message.value,
                self._indexes,
                record_stamp=stamp,
                oldest=oldest,
                position=EventPosition(partition=message.partition, offset=message.offset),
            )
            if isinstance(outcome, Rejected):
                return outcome
            deliveries = self._topics.deliveries
            return _Records(
                [
                    *((deliveries, key.encode(), value) for key, value in request_values(outcome)),
                    *(_record(self._topics.workflow_runs, r.workflow_id, r) for r in outcome.runs),
                ],
                requests=len(outcome.requests),
                runs=len(outcome.runs),
                routed=outcome,
            )
        except Exception as exc:
            where = {"partition": message.partition, "offset": message.offset}
            if is_content_error(exc):
                log.warning("fanout.route_failed", error=repr(exc), **where)
            else:
                log.exception("fanout.route_failed", error=repr(exc), **where)
            return Rejected(f"fanout could not route the event: {_reason(exc)}", "unroutable")

    async def _dead_letter(self, message: ConsumerRecord, reason: str) -> asyncio.Future:
        log.warning(
            "fanout.event_rejected",
            reason=reason,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
        )
        return await send_dead_letter(self._producer, self._topics.events_dlq, message, reason)
