"""Kafka for every service: topic names and codec (`topics`), clients (`clients`), topic
creation (`topic_setup`). At-least-once throughout: producers wait for every in-sync
replica (`acks="all"`); consumers commit only what is durably done.
"""

from shared.kafka.clients import (
    BACKGROUND_FETCH_MAX_WAIT_MS,
    BROKER_CHECK_TIMEOUT_S,
    GAP_REFETCH_PAUSE_S,
    GapRecheckingConsumer,
    ServiceConsumer,
    broker_check,
    connection_options,
    make_consumer,
    make_producer,
    stop_quietly,
)
from shared.kafka.fences import offsets_after, read_again
from shared.kafka.topic_setup import TopicsRefused, config_drift, ensure_topics, refused_topics
from shared.kafka.topics import JSON_HEADERS, Topics, dumps, loads

__all__ = [
    "BACKGROUND_FETCH_MAX_WAIT_MS",
    "BROKER_CHECK_TIMEOUT_S",
    "GAP_REFETCH_PAUSE_S",
    "JSON_HEADERS",
    "GapRecheckingConsumer",
    "ServiceConsumer",
    "Topics",
    "TopicsRefused",
    "broker_check",
    "config_drift",
    "connection_options",
    "dumps",
    "ensure_topics",
    "loads",
    "make_consumer",
    "make_producer",
    "offsets_after",
    "read_again",
    "refused_topics",
    "stop_quietly",
]
