"""A batch is committed only after the broker acknowledged all it produced (fakes, no broker)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError
from aiokafka.structs import ConsumerRecord

from services.fanout.index import Subscriptions
from services.fanout.metrics import FanoutMetrics
from services.fanout.processor import BatchProcessor
from shared.events import build_event
from shared.kafka import Topics, dumps
from shared.messages import WebhookRecord, WorkflowRecord, WorkflowRunRequested

NOW = datetime(2026, 5, 29, 10, 6, tzinfo=UTC)
ORG = str(uuid.uuid4())
WORKFLOW_ID = str(uuid.uuid4())
TOPICS = Topics("ns")
TP0, TP1 = TopicPartition(TOPICS.events, 0), TopicPartition(TOPICS.events, 1)


class FakeProducer:
    def __init__(
        self,
        *,
        fail_with: Exception | None = None,
        fail_on: str | None = None,
        too_large: str | None = None,
    ) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None, list]] = []
        self._fail_with = fail_with
        self._fail_on = fail_on  # None: every topic
        self._too_large = too_large

    async def send(self, topic, value=None, key=None, headers=None):
        if topic == self._too_large:
            raise MessageSizeTooLargeError("too large")
        self.sent.append((topic, key, value, headers))
        ack = asyncio.get_running_loop().create_future()
        if self._fail_with is not None and self._fail_on in (None, topic):
            ack.set_exception(self._fail_with)
        else:
            ack.set_result(None)
        return ack


class FakeConsumer:
    def __init__(self) -> None:
        self.commits: list[dict[TopicPartition, int]] = []
        self.seeks: list[tuple[TopicPartition, int]] = []

    async def commit(self, offsets):
        self.commits.append(dict(offsets))

    def seek(self, tp, offset):
        self.seeks.append((tp, offset))


def message(tp: TopicPartition, offset: int, value: bytes | None) -> ConsumerRecord:
    return ConsumerRecord(
        tp.topic, tp.partition, offset, 0, 0, b"room_1", value, None, 6, len(value or b""), ()
    )


def joined() -> bytes:
    user = {"id": "user_ada", "token": "tok_ada"}
    room = {"id": "room_1"}
    event = build_event(
        event="participant.joined", organization_id=ORG, room=room, user=user, now=NOW
    )
    return dumps(event)


def processor(
    producer, consumer, *, workflows: bool = False, metrics: FanoutMetrics | None = None
) -> BatchProcessor:
    indexes = Subscriptions()
    indexes.webhooks.apply(
        WebhookRecord(
            id=str(uuid.uuid4()),
            organization_id=ORG,
            name=None,
            url="https://example.com",
            events=["participant.joined"],
            room_id=None,
            enabled=True,
            revision=1,
            created_at=NOW,
            updated_at=NOW,
        )
    )
    if workflows:
        indexes.workflows.apply(
            WorkflowRecord(
                id=WORKFLOW_ID,
                organization_id=ORG,
                name="greet",
                events=["participant.joined"],
                room_id="room_1",
                enabled=True,
                language="ts",
                version=3,
                revision=1,
                created_at=NOW,
                updated_at=NOW,
            )
        )
    metrics = metrics or FanoutMetrics.create()
    return BatchProcessor(consumer, producer, TOPICS, indexes, metrics, lambda: NOW)


BATCH = {
    TP0: [message(TP0, 10, joined()), message(TP0, 11, b"nope"), message(TP0, 12, joined())],
    TP1: [message(TP1, 3, joined())],
}


async def test_commits_the_offset_after_the_last_record_of_each_partition():
    producer, consumer = FakeProducer(), FakeConsumer()
    await processor(producer, consumer).process(BATCH)
    assert consumer.commits == [{TP0: 13, TP1: 4}]
    assert [topic for topic, *_ in producer.sent].count(TOPICS.deliveries) == 3
    assert [topic for topic, *_ in producer.sent].count(TOPICS.events_dlq) == 1


async def test_a_failed_acknowledgement_commits_nothing_and_rewinds_the_batch():
    producer, consumer = FakeProducer(fail_with=KafkaTimeoutError()), FakeConsumer()
    with pytest.raises(KafkaTimeoutError):
        await processor(producer, consumer).process(BATCH)
    assert consumer.commits == []
    assert sorted(consumer.seeks) == [(TP0, 10), (TP1, 3)]


async def test_a_request_too_large_to_produce_goes_to_the_dlq_instead_of_blocking():
    producer, consumer = FakeProducer(too_large=TOPICS.deliveries), FakeConsumer()
    raw = joined()
    await processor(producer, consumer).process({TP1: [message(TP1, 3, raw)]})
    assert consumer.commits == [{TP1: 4}]
    [(topic, key, value, headers)] = producer.sent
    assert (topic, key, value) == (TOPICS.events_dlq, b"room_1", raw)
    assert dict(headers)["rh-error"].startswith(b"producer:")


def topics_sent(producer: FakeProducer) -> list[str]:
    return [topic for topic, *_ in producer.sent]


async def test_run_requests_go_to_the_workflow_runs_topic_keyed_by_workflow_id():
    producer, consumer, metrics = FakeProducer(), FakeConsumer(), FanoutMetrics.create()
    await processor(producer, consumer, workflows=True, metrics=metrics).process(BATCH)
    assert consumer.commits == [{TP0: 13, TP1: 4}]
    assert topics_sent(producer).count(TOPICS.deliveries) == 3
    runs = [(k, v, h) for t, k, v, h in producer.sent if t == TOPICS.workflow_runs]
    assert len(runs) == 3
    for key, value, headers in runs:
        assert key == WORKFLOW_ID.encode()
        assert headers == [("content-type", b"application/json")]
        run = WorkflowRunRequested.model_validate_json(value)
        assert (run.workflow_id, run.version, run.room_id) == (WORKFLOW_ID, 3, "room_1")
        assert b"tok_ada" not in value
    assert metrics.registry.get_sample_value("roomhooks_fanout_workflow_run_requests_total") == 3
    assert metrics.registry.get_sample_value("roomhooks_fanout_delivery_requests_total") == 3


async def test_a_failed_run_request_acknowledgement_commits_nothing():
    producer = FakeProducer(fail_with=KafkaTimeoutError(), fail_on=TOPICS.workflow_runs)
    consumer, metrics = FakeConsumer(), FanoutMetrics.create()
    with pytest.raises(KafkaTimeoutError):
        await processor(producer, consumer, workflows=True, metrics=metrics).process(BATCH)
    assert consumer.commits == []
    assert sorted(consumer.seeks) == [(TP0, 10), (TP1, 3)]
    assert metrics.registry.get_sample_value("roomhooks_fanout_workflow_run_requests_total") == 0


async def test_a_run_request_too_large_to_produce_goes_to_the_dlq_instead_of_blocking():
    producer, consumer = FakeProducer(too_large=TOPICS.workflow_runs), FakeConsumer()
    raw = joined()
    await processor(producer, consumer, workflows=True).process({TP1: [message(TP1, 3, raw)]})
    assert consumer.commits == [{TP1: 4}]
    assert topics_sent(producer) == [TOPICS.deliveries, TOPICS.events_dlq]
    _, key, value, headers = producer.sent[-1]
    assert (key, value) == (b"room_1", raw)
    assert dict(headers)["rh-error"].startswith(b"producer:")
