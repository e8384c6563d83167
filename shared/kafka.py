"""Kafka helpers: topic names, the producer and consumer factories, topic creation, JSON codec.

Designed for real Kafka, tested on the Tansu dev broker (ARCHITECTURE.md lists its limits):
producers wait for every in-sync replica (`acks="all"`); idempotence is a setting because
Tansu cannot grant a producer id.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from shared.offset_gaps import GapWatch
from shared.settings import KafkaSettings

log = structlog.get_logger(__name__)

JSON_HEADERS: list[tuple[str, bytes]] = [("content-type", b"application/json")]


@dataclass(frozen=True)
class Topics:
    """Every topic and consumer-group name, derived from one namespace."""

    namespace: str = "roomhooks"

    @property
    def events(self) -> str:
        return f"{self.namespace}.events"

    @property
    def events_dlq(self) -> str:
        return f"{self.namespace}.events.dlq"

    @property
    def registry(self) -> str:
        return f"{self.namespace}.registry"

    @property
    def registry_commands(self) -> str:
        """Orders to the registry from other services (e.g. disable a webhook after a 410)."""
        return f"{self.namespace}.registry.commands"

    @property
    def deliveries(self) -> str:
        return f"{self.namespace}.deliveries"

    @property
    def deliveries_dlq(self) -> str:
        return self.dlq_of(self.deliveries)

    @property
    def workflow_runs(self) -> str:
        return f"{self.namespace}.workflow-runs"

    @property
    def workflow_runs_dlq(self) -> str:
        return self.dlq_of(self.workflow_runs)

    @staticmethod
    def dlq_of(topic: str) -> str:
        """Where the malformed messages of `topic` go, with their reason."""
        return f"{topic}.dlq"

    @property
    def room_state(self) -> str:
        return f"{self.namespace}.room-state"

    def group(self, service: str) -> str:
        return f"{self.namespace}-{service}"

    def all(self) -> dict[str, dict[str, str]]:
        """Topic name -> topic configs, as ARCHITECTURE.md lays them out."""
        compacted = {"cleanup.policy": "compact"}
        return {
            self.events: {},
            self.events_dlq: {},
            self.registry: compacted,
            self.registry_commands: {},
            self.deliveries: {},
            self.deliveries_dlq: {},
            self.workflow_runs: {},
            self.workflow_runs_dlq: {},
            self.room_state: compacted,
        }

    @classmethod
    def from_settings(cls, settings: KafkaSettings) -> Topics:
        return cls(namespace=settings.topic_namespace)


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON, the wire format of every topic."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def loads(raw: bytes) -> Any:
    return json.loads(raw)


def make_producer(settings: KafkaSettings, **overrides: Any) -> AIOKafkaProducer:
    """A producer that acknowledges only what every in-sync replica holds."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": settings.client_id,
        "acks": "all",
        "enable_idempotence": settings.idempotent_producer,
        "request_timeout_ms": settings.request_timeout_ms,
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
) -> AIOKafkaConsumer:
    """A consumer that commits only when told to: acknowledge durable work, nothing else.

    `background`: off the path from an event to its delivery, so it polls at Kafka's default
    pace instead of `settings.fetch_max_wait_ms`.
    """
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": settings.client_id,
        "group_id": group_id,
        "enable_auto_commit": False,
        # Tansu's "latest" is wrong, and a new group must not skip what is already there.
        "auto_offset_reset": "earliest",
        "session_timeout_ms": settings.session_timeout_ms,
        "heartbeat_interval_ms": max(500, settings.session_timeout_ms // 4),
        "request_timeout_ms": settings.request_timeout_ms,
        "fetch_max_wait_ms": (
            BACKGROUND_FETCH_MAX_WAIT_MS if background else settings.fetch_max_wait_ms
        ),
    }
    options.update(overrides)
    if settings.gap_recheck_ms:
        return GapRecheckingConsumer(*topics, recheck_ms=settings.gap_recheck_ms, **options)
    return AIOKafkaConsumer(*topics, **options)


# While a gap is being fetched again, how long a `getmany` that found nothing else waits
# before it returns: the broker stores the missing batch within a few milliseconds.
GAP_REFETCH_PAUSE_S = 0.005


class GapRecheckingConsumer(AIOKafkaConsumer):
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


async def ensure_topics(settings: KafkaSettings, topics: Topics | None = None) -> list[str]:
    """Create the missing topics with the configured partitions; returns those created.

    Topics are created with their configs (`cleanup.policy=compact` where ARCHITECTURE.md says so).
    A creation the broker refuses (too few brokers for the replication factor, a config it
    rejects) raises `TopicsRefused`: aiokafka reports it in the response, not as an error.
    An existing topic whose configs differ from ours is reported (`kafka.topic_config_differs`),
    not altered: it may be an operator's, with overrides of its own.
    """
    topics = topics or Topics.from_settings(settings)
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=settings.client_id,
        request_timeout_ms=settings.request_timeout_ms,
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        configs = topics.all()
        wanted = [
            NewTopic(
                name,
                num_partitions=settings.partitions,
                replication_factor=settings.replication_factor,
                topic_configs=topic_configs,
            )
            for name, topic_configs in configs.items()
            if name not in existing
        ]
        if wanted:
            response = await admin.create_topics(wanted)
            refused = refused_topics(response.topic_errors)
            if refused:
                raise TopicsRefused(refused)
            log.info("kafka.topics_created", topics=[t.name for t in wanted])
        await _report_config_drift(
            admin, {name: c for name, c in configs.items() if name in existing and c}
        )
        return [t.name for t in wanted]
    finally:
        await admin.close()


class TopicsRefused(KafkaError):
    """The broker refused to create some topics: `refused` maps each one to its reason."""

    def __init__(self, refused: dict[str, str]) -> None:
        super().__init__("; ".join(f"{name}: {why}" for name, why in sorted(refused.items())))
        self.refused = refused


def refused_topics(topic_errors: Iterable[Sequence[Any]]) -> dict[str, str]:
    """Topic -> the broker's reason, for each creation in a CreateTopics answer that failed.

    "Already exists" is no failure: a replica starting at the same time created it.
    Entries are (name, error_code) or, from v1 on, (name, error_code, error_message).
    """
    refused = {}
    for name, code, *rest in topic_errors:
        if code not in (0, TopicAlreadyExistsError.errno):
            message = rest[0] if rest and rest[0] else None
            refused[name] = message or for_code(code).__name__
    return refused


def config_drift(
    wanted: dict[str, dict[str, str]], actual: dict[str, dict[str, str]]
) -> list[tuple[str, str, str, str | None]]:
    """(topic, config, wanted value, actual value) for every wanted config a topic lacks."""
    return [
        (topic, name, value, actual.get(topic, {}).get(name))
        for topic, configs in sorted(wanted.items())
        for name, value in sorted(configs.items())
        if actual.get(topic, {}).get(name) != value
    ]


async def _report_config_drift(
    admin: AIOKafkaAdminClient, wanted: dict[str, dict[str, str]]
) -> None:
    if not wanted:
        return
    # Every config of each topic: the dev broker drops the connection when asked for some.
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in wanted]
    try:
        answers = await admin.describe_configs(resources)
    except KafkaError as exc:
        log.warning("kafka.topic_configs_unchecked", topics=sorted(wanted), error=repr(exc))
        return
    actual = {
        resource[3]: {entry[0]: entry[1] for entry in resource[4]}
        for answer in answers
        for resource in answer.resources
        if resource[0] == 0
    }
    for topic, name, value, found in config_drift(wanted, actual):
        # e.g. a compacted topic that is not: its old records are never dropped.
        log.warning("kafka.topic_config_differs", topic=topic, config=name, wanted=value,
                    actual=found)  # fmt: skip


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
