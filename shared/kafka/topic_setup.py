"""Creating the topics a stack needs, and saying when existing ones differ from ours.

Every service runs `ensure_topics` at start (replicas race harmlessly: "already exists" is
no failure). Which topics, with which configs: `Topics.all()`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from shared.kafka.clients import connection_options
from shared.kafka.topics import Topics
from shared.settings import KafkaSettings

log = structlog.get_logger(__name__)


async def ensure_topics(settings: KafkaSettings, topics: Topics | None = None) -> list[str]:
    """Create the missing topics with the configured partitions; returns those created.

    Topics are created with their configs (`cleanup.policy=compact` where ARCHITECTURE.md says so).
    A creation the broker refuses (too few brokers for the replication factor, a config it
    rejects) raises `TopicsRefused`: aiokafka reports it in the response, not as an error.
    An existing topic whose configs differ from ours is reported (`kafka.topic_config_differs`),
    not altered: it may be an operator's, with overrides of its own.
    """
    topics = topics or Topics.from_settings(settings)
    admin = make_admin(settings)
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


def make_admin(settings: KafkaSettings) -> AIOKafkaAdminClient:
    """An admin client that reaches the brokers as the producers and consumers do."""
    return AIOKafkaAdminClient(
        **connection_options(settings), request_timeout_ms=settings.request_timeout_ms
    )


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
