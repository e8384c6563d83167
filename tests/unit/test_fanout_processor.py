"""A batch is committed only after the broker acknowledged all it produced (fakes, no broker)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError
from aiokafka.structs import ConsumerRecord

from services.fanout.index import Subscriptions
from services.fanout.metrics import FanoutMetrics
from services.fanout.processor import BatchProcessor
from shared.dead_letters import CUT_BYTES as DLQ_CUT_BYTES
from shared.events import build_event
from shared.kafka import Topics, dumps
from shared.messages import (
    DeliveryRequested,
    WebhookRecord,
    WorkflowRecord,
    WorkflowRunRequested,
)
from tests.support.fanout_fakes import FakeConsumer, FakeEventLog, FakeProducer

NOW = datetime(2026, 5, 29, 10, 6, tzinfo=UTC)
# When the broker appended the test's records (a little before fanout reads them).
APPENDED = NOW - timedelta(seconds=2)
APPENDED_MS = int(APPENDED.timestamp() * 1000)
# When the test's events say they happened (a little before the broker appended them).
HAPPENED = APPENDED - timedelta(seconds=1)
RETENTION = timedelta(days=30)
ORG = str(uuid.uuid4())
WORKFLOW_ID = str(uuid.uuid4())
TOPICS = Topics("ns")
TP0, TP1 = TopicPartition(TOPICS.events, 0), TopicPartition(TOPICS.events, 1)


def message(
    tp: TopicPartition, offset: int, value: bytes | None, *, timestamp_ms: int | None = APPENDED_MS
) -> ConsumerRecord:
    return ConsumerRecord(
        tp.topic,
        tp.partition,
        offset,
        timestamp_ms,
        1,  # LogAppendTime
        b"room_1",
        value,
        None,
        6,
        len(value or b""),
        (),
    )


def stamp(*, valid: bool = True, appended: datetime = APPENDED) -> datetime:
    """What fanout stamps on all it makes of one of the test's records appended at `appended`
    (services/fanout/stamps.py): a valid event's own time, else the record's."""
    return HAPPENED if valid else appended


def joined() -> bytes:
    user = {"id": "user_ada", "token": "tok_ada"}
    room = {"id": "room_1"}
    event = build_event(
        event="participant.joined", organization_id=ORG, room=room, user=user, now=HAPPENED
    )
    return dumps(event)


def processor(
    producer,
    consumer,
    *,
    workflows: bool = False,
    metrics: FanoutMetrics | None = None,
    events: FakeEventLog | None = None,
    now: datetime = NOW,
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
    events = events if events is not None else FakeEventLog()
    return BatchProcessor(
        consumer,
        producer,
        TOPICS,
        indexes,
        metrics,
        lambda: now,
        events=events,
        retention=RETENTION,
    )


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
    assert sorted(consumer.rewinds) == [(TP0, 10), (TP1, 3)]


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
    assert sorted(consumer.rewinds) == [(TP0, 10), (TP1, 3)]
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


class SizeCappedProducer(FakeProducer):
    """A producer refusing, as aiokafka does, any record on `topic` larger than `limit`."""

    def __init__(self, topic: str, limit: int) -> None:
        super().__init__()
        self._capped, self._limit = topic, limit

    async def send(self, topic, value=None, key=None, headers=None):
        size = len(value or b"") + len(key or b"") + sum(len(k) + len(v) for k, v in headers or ())
        if topic == self._capped and size > self._limit:
            raise MessageSizeTooLargeError("too large")
        return await super().send(topic, value, key, headers)


def with_id(event_id: str) -> bytes:
    """A joined event as a producer sends it, NUL and surrogates as JSON escapes."""
    return json.dumps({**json.loads(joined()), "id": event_id}).encode()


async def test_an_event_whose_id_holds_nul_is_dead_lettered_and_makes_no_request():
    producer, consumer, metrics = FakeProducer(), FakeConsumer(), FanoutMetrics.create()
    bad = with_id("ev\u0000x")
    batch = {TP0: [message(TP0, 1, joined()), message(TP0, 2, bad), message(TP0, 3, joined())]}
    await processor(producer, consumer, workflows=True, metrics=metrics).process(batch)
    assert consumer.commits == [{TP0: 4}]
    assert topics_sent(producer).count(TOPICS.deliveries) == 2
    assert topics_sent(producer).count(TOPICS.workflow_runs) == 2
    [(_, _, value, headers)] = [s for s in producer.sent if s[0] == TOPICS.events_dlq]
    assert value == bad
    assert dict(headers)["rh-error"].startswith(b"id: string contains NUL (U+0000)")
    assert not any(b"ev\\u0000x" in v for t, _, v, _ in producer.sent if t != TOPICS.events_dlq)


async def test_poison_inputs_are_counted_by_kind_in_the_shared_metric_and_fanouts_own():
    producer, consumer, metrics = FakeProducer(), FakeConsumer(), FanoutMetrics.create()
    poison = [b"nope", with_id("\ud800"), b"[" * 100_000]
    batch = {TP0: [message(TP0, offset, value) for offset, value in enumerate(poison)]}
    await processor(producer, consumer, metrics=metrics).process(batch)
    sample = metrics.registry.get_sample_value
    for kind in ("not_json", "unstorable_text", "too_deep"):
        labels = {"service": "fanout", "kind": kind}
        assert sample("roomhooks_poison_inputs_total", labels) == 1
        assert sample("roomhooks_fanout_dlq_total", {"reason": kind}) == 1


async def test_an_event_whose_routing_raises_is_dead_lettered_once_and_the_batch_goes_on():
    producer, consumer, metrics = FakeProducer(), FakeConsumer(), FanoutMetrics.create()
    fanout = processor(producer, consumer, metrics=metrics)
    routable = joined()
    exploding = json.dumps({**json.loads(joined()), "room": {"id": "room_boom"}}).encode()
    match = fanout._indexes.webhooks.match

    def match_or_fail(org, event, room_id, scope):
        if room_id == "room_boom":
            raise LookupError("index holds a webhook it cannot match")
        return match(org, event, room_id, scope)

    fanout._indexes.webhooks.match = match_or_fail
    batch = {TP0: [message(TP0, 5, exploding), message(TP0, 6, routable)]}
    await fanout.process(batch)
    await fanout.process(batch)  # the batch delivered again (at-least-once): the same outcome
    assert consumer.commits == [{TP0: 7}, {TP0: 7}]
    assert topics_sent(producer) == [TOPICS.events_dlq, TOPICS.deliveries] * 2
    headers = dict(producer.sent[0][3])
    assert headers["rh-error"] == (
        b"fanout could not route the event: LookupError: index holds a webhook it cannot match"
    )
    labels = {"service": "fanout", "kind": "unroutable"}
    assert metrics.registry.get_sample_value("roomhooks_poison_inputs_total", labels) == 2


async def test_a_dead_letter_too_large_for_the_producer_keeps_its_head_and_commits():
    producer = SizeCappedProducer(TOPICS.events_dlq, limit=DLQ_CUT_BYTES + 4096)
    consumer = FakeConsumer()
    huge = b"x" * (DLQ_CUT_BYTES + 8192)
    await processor(producer, consumer).process({TP1: [message(TP1, 3, huge)]})
    assert consumer.commits == [{TP1: 4}]
    [(topic, key, value, headers)] = producer.sent
    assert (topic, key, value) == (TOPICS.events_dlq, b"room_1", huge[:DLQ_CUT_BYTES])
    reason = dict(headers)["rh-error"].decode()
    assert reason.startswith("event is not JSON")
    assert reason.endswith(f"(value cut to its first {DLQ_CUT_BYTES} of {len(huge)} bytes)")


async def test_a_request_that_fails_validation_is_dead_lettered_naming_the_field_not_its_value():
    producer, consumer = FakeProducer(), FakeConsumer()
    fanout = processor(producer, consumer)
    secret = "org-secret-not-a-uuid"  # an event accepts any organization id; a request not
    raw = json.dumps({**json.loads(joined()), "organization_id": secret}).encode()
    fanout._indexes.webhooks.match = lambda *where: [str(uuid.uuid4())]  # a bug matched it
    await fanout.process({TP0: [message(TP0, 1, raw)]})
    assert consumer.commits == [{TP0: 2}]
    [(topic, _, _, headers)] = producer.sent
    reason = dict(headers)["rh-error"].decode()
    assert topic == TOPICS.events_dlq
    assert reason.startswith("fanout could not route the event: DeliveryRequested: organization_id")
    assert secret not in reason


async def test_each_request_is_produced_as_the_json_its_model_dumps():
    producer, consumer = FakeProducer(), FakeConsumer()
    user = {"id": "user_zoé", "name": 'Zoé "\\" \u2028 \x1f 🎉', "token": "tok"}
    raw = dumps(
        build_event(
            event="participant.joined",
            organization_id=ORG,
            room={"id": "room_1"},
            user=user,
            now=HAPPENED,
        )
    )
    await processor(producer, consumer, workflows=True).process({TP1: [message(TP1, 3, raw)]})
    models = {TOPICS.deliveries: DeliveryRequested, TOPICS.workflow_runs: WorkflowRunRequested}
    assert sorted(topics_sent(producer)) == sorted(models)
    for topic, _, value, _ in producer.sent:
        model = models[topic].model_validate_json(value)
        assert value == model.model_dump_json().encode()
        assert value == dumps(model.model_dump(mode="json"))
