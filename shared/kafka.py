"""Kafka helpers: topic names, the producer and consumer factories, topic creation, JSON codec.

Designed for real Kafka, tested on the Tansu dev broker (see DESIGN.md for its limits):
producers wait for every in-sync replica (`acks="all"`); idempotence is a setting because
Tansu cannot grant a producer id.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

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
    def workflow_runs(self) -> str:
        return f"{self.namespace}.workflow-runs"

    @property
    def room_state(self) -> str:
        return f"{self.namespace}.room-state"

    def group(self, service: str) -> str:
        return f"{self.namespace}-{service}"

    def all(self) -> dict[str, dict[str, str]]:
        """Topic name -> topic configs, as DESIGN.md lays them out."""
        compacted = {"cleanup.policy": "compact"}
        return {
            self.events: {},
            self.events_dlq: {},
            self.registry: compacted,
            self.registry_commands: {},
            self.deliveries: {},
            self.workflow_runs: {},
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
    return AIOKafkaConsumer(*topics, **options)


async def ensure_topics(settings: KafkaSettings, topics: Topics | None = None) -> list[str]:
    """Create the missing topics with the configured partitions; returns those created."""
    topics = topics or Topics.from_settings(settings)
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=settings.client_id,
        request_timeout_ms=settings.request_timeout_ms,
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                name,
                num_partitions=settings.partitions,
                replication_factor=settings.replication_factor,
                topic_configs=configs,
            )
            for name, configs in topics.all().items()
            if name not in existing
        ]
        if wanted:
            try:
                await admin.create_topics(wanted)
            except TopicAlreadyExistsError:
                pass  # a replica starting at the same time created it
            log.info("kafka.topics_created", topics=[t.name for t in wanted])
        return [t.name for t in wanted]
    finally:
        await admin.close()


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
