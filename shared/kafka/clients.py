"""Kafka clients as every service builds them: producers that wait for every in-sync replica,
consumers that commit only when told to, and the checks and shutdown around them.

Designed for real Kafka, tested on the Tansu dev broker (ARCHITECTURE.md lists its limits):
idempotence is a setting because Tansu cannot grant a producer id, and a consumer can hold
back records past a young offset gap (`GapRecheckingConsumer`, shared/offset_gaps.py).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.helpers import create_ssl_context

from shared.kafka.fences import fetched_within, may_rewind
from shared.kafka.lag import CONSUMER_LAG, LagClock, partition_lags
from shared.offset_gaps import GapWatch
from shared.settings import KafkaSettings

log = structlog.get_logger(__name__)


def connection_options(settings: KafkaSettings) -> dict[str, Any]:
    """How every client (producer, consumer, admin) reaches the brokers: the address, TLS and
    SASL. The settings were checked whole when built (`kafka_security_problems`); the result
    holds the SASL password in the clear, so it is handed to aiokafka and never logged."""
    protocol = settings.security_protocol
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": settings.client_id,
        "security_protocol": protocol.value,
    }
    if protocol.uses_tls:
        options["ssl_context"] = tls_context(settings)
    if protocol.uses_sasl and settings.sasl_mechanism and settings.sasl_password:
        options["sasl_mechanism"] = settings.sasl_mechanism.value
        options["sasl_plain_username"] = settings.sasl_username
        options["sasl_plain_password"] = settings.sasl_password.get_secret_value()
    return options


def tls_context(settings: KafkaSettings) -> ssl.SSLContext:
    """A client context that verifies the brokers' certificates and host names against
    KAFKA_SSL_CAFILE (else the system's CAs), with the client certificate when one is set."""
    try:
        return create_ssl_context(
            cafile=settings.ssl_cafile,
            certfile=settings.ssl_certfile,
            keyfile=settings.ssl_keyfile,
        )
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        files = "KAFKA_SSL_CAFILE, KAFKA_SSL_CERTFILE, KAFKA_SSL_KEYFILE"
        raise ValueError(f"cannot read the TLS files ({files}): {exc}") from None


def make_producer(settings: KafkaSettings, **overrides: Any) -> AIOKafkaProducer:
    """A producer that acknowledges only what every in-sync replica holds."""
    options: dict[str, Any] = {
        **connection_options(settings),
        "acks": "all",
        "enable_idempotence": settings.idempotent_producer,
        "request_timeout_ms": settings.request_timeout_ms,
        "metadata_max_age_ms": settings.metadata_max_age_ms,
        "linger_ms": 5,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


# Kafka's default fetch wait, for consumers off the event path (registry feeds, watchers,
# the projection): every poll of theirs costs the broker CPU that the event path needs.
BACKGROUND_FETCH_MAX_WAIT_MS = 500


def make_consumer(
    settings: KafkaSettings,
    *topics: str,
    group_id: str | None,
    background: bool = False,
    **overrides: Any,
) -> ServiceConsumer:
    """A consumer that commits only when told to: acknowledge durable work, nothing else.

    `background`: off the path from an event to its delivery, so it polls at Kafka's default
    pace instead of `settings.fetch_max_wait_ms`.
    """
    options: dict[str, Any] = {
        **connection_options(settings),
        "group_id": group_id,
        "enable_auto_commit": False,
        # Tansu's "latest" is wrong, and a new group must not skip what is already there.
        "auto_offset_reset": "earliest",
        "session_timeout_ms": settings.session_timeout_ms,
        "heartbeat_interval_ms": max(500, settings.session_timeout_ms // 4),
        "request_timeout_ms": settings.request_timeout_ms,
        "metadata_max_age_ms": settings.metadata_max_age_ms,
        "fetch_max_wait_ms": (
            BACKGROUND_FETCH_MAX_WAIT_MS if background else settings.fetch_max_wait_ms
        ),
    }
    options.update(overrides)
    if settings.gap_recheck_ms:
        return GapRecheckingConsumer(*topics, recheck_ms=settings.gap_recheck_ms, **options)
    return ServiceConsumer(*topics, **options)


class ServiceConsumer(AIOKafkaConsumer):
    """An AIOKafkaConsumer as every service uses it. It reports its lag per partition
    (shared/kafka/lag.py) after a `getmany`, at most once a second: the high-water mark its
    fetches brought back minus the position it reads from next. In a group, `commit` and
    `rewind` touch only what the current assignment has fetched (shared/kafka/fences.py): the
    rest belongs to a rebalance's new reader, which starts at the committed offset."""

    def __init__(self, *topics: str, **options: Any) -> None:
        super().__init__(*topics, **options)
        self._group = options.get("group_id")
        self._lag_clock = LagClock()

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[ConsumerRecord]]:
        batch = await super().getmany(*partitions, timeout_ms=timeout_ms, max_records=max_records)
        if self._lag_clock.due():
            self.report_lag()
        return batch

    def report_lag(self) -> None:
        assigned = self.assignment()
        marks = {tp: self.highwater(tp) for tp in assigned}
        positions = {tp: p for tp in assigned if (p := self._known_position(tp)) is not None}
        CONSUMER_LAG.report(id(self), self._group, partition_lags(marks, positions))

    async def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        """Commit `offsets` (all consumed, when None); in a group, an offset past what the
        current assignment has fetched is left out and logged (fences.py)."""
        if offsets is None or self._group is None:
            await super().commit(offsets)
            return
        kept, stale = fetched_within(offsets, self._positions(offsets))
        if stale:
            log.warning("kafka.commit_fenced", group=self._group, offsets=_named(stale),
                        why="the group rebalanced since these records were fetched: the "
                        "partition's reader starts again at its committed offset")  # fmt: skip
        if kept:
            await super().commit(kept)

    def rewind(self, partition: TopicPartition, offset: int) -> None:
        """Fetch `partition` again from `offset`, a batch's first, so the batch is read again;
        nothing when the current assignment has not fetched that far (fences.py): after a
        rebalance the partition's reader starts at its committed offset, before the batch."""
        if may_rewind(offset, self._positions({partition: offset}).get(partition)):
            self.seek(partition, offset)
        else:
            log.info("kafka.rewind_fenced", group=self._group, offsets=_named({partition: offset}))

    def _positions(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        assigned = self.assignment()
        known = {tp: self._known_position(tp) for tp in partitions if tp in assigned}
        return {tp: position for tp, position in known.items() if position is not None}

    def _known_position(self, tp: TopicPartition) -> int | None:
        # aiokafka's public `position()` waits while a position is being reset; the lag is
        # reported from inside the consume loop, which must not wait for it.
        subscription = self._subscription.subscription
        assignment = subscription.assignment if subscription is not None else None
        state = assignment.state_value(tp) if assignment is not None else None
        return state.position if state is not None and state.has_valid_position else None

    async def stop(self) -> None:
        CONSUMER_LAG.forget(id(self))
        await super().stop()


# While a gap is being fetched again, how long a `getmany` that found nothing else waits
# before it returns: the broker stores the missing batch within a few milliseconds.
GAP_REFETCH_PAUSE_S = 0.005


def _named(offsets: Mapping[TopicPartition, int]) -> dict[str, int]:
    return {f"{tp.topic}/{tp.partition}": offset for tp, offset in offsets.items()}


class GapRecheckingConsumer(ServiceConsumer):
    """An AIOKafkaConsumer whose `getmany` hands on no record past a young gap in a partition's
    offsets: it seeks back to the gap and fetches again (the dev broker's race,
    shared/offset_gaps.py). A `seek` sets where the partition goes on."""

    def __init__(self, *topics: str, recheck_ms: int, **options: Any) -> None:
        super().__init__(*topics, **options)
        self._gaps = GapWatch(recheck_ms / 1000)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        super().seek(partition, offset)
        self._gaps.moved(partition, offset)

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[ConsumerRecord]]:
        batch = await super().getmany(*partitions, timeout_ms=timeout_ms, max_records=max_records)
        self._gaps.keep_only(self.assignment())
        now = time.monotonic()
        handed: dict[TopicPartition, list[ConsumerRecord]] = {}
        refetching = False
        for tp, records in batch.items():
            admitted = self._gaps.admit(tp, [r.offset for r in records], now)
            if admitted.keep:
                handed[tp] = records[: admitted.keep]
            if admitted.refetch_from is not None:
                super().seek(tp, admitted.refetch_from)  # not ours: the gap's clock runs on
                refetching = True
            if admitted.accepted is not None:
                log.warning("kafka.offset_gap_accepted", topic=tp.topic, partition=tp.partition,
                            expected=admitted.accepted.expected, found=admitted.accepted.found,
                            waited_ms=self._gaps.recheck_s * 1000)  # fmt: skip
            if admitted.filled_after_s is not None:
                log.info("kafka.offset_gap_filled", topic=tp.topic, partition=tp.partition,
                         after_ms=round(admitted.filled_after_s * 1000, 1))  # fmt: skip
        if refetching and not handed:
            await asyncio.sleep(GAP_REFETCH_PAUSE_S)
        return handed


# How long a readiness probe waits for the broker's metadata answer.
BROKER_CHECK_TIMEOUT_S = 2.0


async def broker_check(
    consumer: AIOKafkaConsumer, topics: Iterable[str], *, timeout_s: float = BROKER_CHECK_TIMEOUT_S
) -> str:
    """ "ok" when the broker answers a metadata request and holds `topics`, else why not.

    For /readyz: aiokafka's `getmany` hides fetch errors (it logs them and returns nothing),
    so a consumer loop cannot tell an idle broker from a gone one; asking for metadata can.
    """
    try:
        present = await asyncio.wait_for(consumer.topics(), timeout=timeout_s)
    except (KafkaError, TimeoutError, OSError):
        return "unreachable"
    missing = sorted(set(topics) - set(present))
    return f"missing topics: {', '.join(missing)}" if missing else "ok"


async def stop_quietly(client: str, stop: Callable[[], Awaitable[object]]) -> None:
    """Stop one client at shutdown; a stop that fails must neither skip the others nor fail
    the exit.

    aiokafka's consumer `stop()` can leak the CancelledError of its own fetch task when the
    broker is down; only a cancellation of *this* task is passed on.
    """
    try:
        await stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        log.warning("kafka.close_failed", client=client, error="CancelledError")
    except Exception as exc:  # noqa: BLE001 - shutting down: report and go on
        log.warning("kafka.close_failed", client=client, error=repr(exc))
