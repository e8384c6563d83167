"""The fanout service on the real broker: registry in, events in, delivery requests out."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import RecordMetadata

from services.fanout.app import Fanout
from shared.events import Scope, build_event, event_names, parse_event, render_payload
from shared.kafka import JSON_HEADERS, Topics, dumps
from shared.messages import DeliveryRequested, WebhookRecord
from shared.settings import KafkaSettings
from tests.support.kafka import Record, read_topic
from tests.support.polling import eventually
from tests.support.services import free_port

pytestmark = pytest.mark.integration

NOW = datetime(2026, 5, 29, 10, 6, tzinfo=UTC)
COLLAB = event_names(Scope.ROOM)[:7]  # participant.*, session.*, user.* (CollabKit)
ROOM_1, ROOM_2 = "room_7f3a2c", "room_91bd04"
ADA = {"id": "user_ada", "name": "Ada Lovelace", "email": "ada@example.com",
       "token": "tok_ada_3f9c2e7d"}  # fmt: skip
GRACE = {"id": "user_grace", "name": "Grace Hopper", "token": "tok_grace_8a1b4c"}
TOKENS = ("tok_ada_3f9c2e7d", "tok_grace_8a1b4c")


def stamp_of(metadata: RecordMetadata) -> datetime:
    """What fanout stamps on all it makes of the record published (services/fanout/stamps.py):
    its timestamp, as the tests' events say they happened long before it."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + timedelta(milliseconds=metadata.timestamp)


def hook(
    org: str,
    events: list[str],
    *,
    room: str | None = None,
    enabled: bool = True,
    revision: int = 1,
    webhook_id: str | None = None,
) -> WebhookRecord:
    return WebhookRecord(
        id=webhook_id or str(uuid.uuid4()),
        organization_id=org,
        name="ops",
        url="https://hooks.example.com/collab",
        events=events,
        room_id=room,
        enabled=enabled,
        revision=revision,
        created_at=NOW,
        updated_at=NOW,
    )


def room_event(name: str, org: str, room_id: str) -> dict:
    room = {"id": room_id, "name": "Design review", "metadata": {"team": "platform"}}
    if name.startswith("user."):
        return build_event(event=name, organization_id=org, room={"id": room_id}, user=ADA, now=NOW)
    if name == "session.closed":
        return build_event(event=name, organization_id=org, room=room, users=[ADA, GRACE], now=NOW)
    if name == "session.started":
        return build_event(event=name, organization_id=org, room=room, now=NOW)
    return build_event(event=name, organization_id=org, room=room, user=ADA, now=NOW)


def member_added(org: str) -> dict:
    member = {"id": "user_grace", "email": "grace@example.com", "role": "ADMIN"}
    return build_event(event="member.added", organization_id=org, now=NOW, extra={"member": member})


async def put_registry(producer: AIOKafkaProducer, topics: Topics, *changes) -> None:
    """Records (or `("delete", id)` tombstones), sent together: multi-record batches."""
    acks = []
    for change in changes:
        if isinstance(change, WebhookRecord):
            key, value = f"webhook:{change.id}", dumps(change.model_dump(mode="json"))
        else:
            key, value = f"webhook:{change[1]}", None
        acks.append(await producer.send(topics.registry, value=value, key=key.encode()))
    await asyncio.gather(*acks)


async def publish(
    producer: AIOKafkaProducer, topics: Topics, value: bytes | None, key: str
) -> RecordMetadata:
    headers = JSON_HEADERS if value is not None else None
    return await producer.send_and_wait(
        topics.events, value=value, key=key.encode(), headers=headers
    )


async def publish_event(producer: AIOKafkaProducer, topics: Topics, event: dict) -> RecordMetadata:
    key = event["room"]["id"] if event.get("room") else event["organization_id"]
    return await publish(producer, topics, dumps(event), key)


def pairs(records: list[Record]) -> list[tuple[str, str]]:
    return sorted((r.key.decode(), json.loads(r.value)["event_id"]) for r in records)


def keys_anywhere(value: object) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in keys_anywhere(v)}
    if isinstance(value, list):
        return {k for v in value for k in keys_anywhere(v)}
    return set()


async def committed_offsets(settings: KafkaSettings, topics: Topics) -> dict[int, int | None]:
    """The fanout group's committed offsets on the events topic (read without joining it)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=topics.group("fanout"),
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        return {
            p: await consumer.committed(TopicPartition(topics.events, p))
            for p in range(settings.partitions)
        }
    finally:
        await consumer.stop()


async def test_delivers_each_event_to_exactly_the_matching_webhooks_without_tokens(
    start_fanout, producer, kafka_settings, topics
):
    org_a, org_b = str(uuid.uuid4()), str(uuid.uuid4())
    every_room = hook(org_a, COLLAB)
    room_1 = hook(org_a, COLLAB[:4], room=ROOM_1)
    room_2 = hook(org_a, COLLAB, room=ROOM_2)
    org_wide = hook(org_a, ["member.added", "user.updated"])
    org_scoped = hook(org_a, ["member.added", "user.created"], room=ROOM_1)
    disabled = hook(org_a, [*COLLAB, "member.added"], enabled=False)
    deleted = hook(org_a, [*COLLAB, "member.added"])
    stale = hook(org_a, ["session.started"], revision=3)
    stale_older = hook(org_a, COLLAB, revision=2, webhook_id=stale.id)
    other_account = hook(org_b, [*COLLAB, "member.added"])
    await put_registry(
        producer, topics, every_room, room_1, room_2, org_wide, org_scoped, disabled, deleted
    )
    await put_registry(producer, topics, stale, ("delete", deleted.id), stale_older, other_account)
    fanout = await start_fanout()
    assert fanout.index_size == 8  # every webhook but the deleted one, before any event

    events = {name: room_event(name, org_a, ROOM_1) for name in COLLAB}
    events["member.added"] = member_added(org_a)
    b_joined = room_event("participant.joined", org_b, "room_b")
    stamps = {}
    for event in [*events.values(), b_joined]:
        stamps[event["id"]] = stamp_of(await publish_event(producer, topics, event))

    receivers = {
        "participant.joined": [every_room, room_1],
        "participant.left": [every_room, room_1],
        "session.started": [every_room, room_1, stale],
        "session.closed": [every_room, room_1],
        "user.created": [every_room, org_scoped],
        "user.updated": [every_room, org_wide],
        "user.deleted": [every_room],
        "member.added": [org_wide],
    }
    expected = sorted(
        [(h.id, events[name]["id"]) for name, hooks in receivers.items() for h in hooks]
        + [(other_account.id, b_joined["id"])]
    )
    records = await read_topic(kafka_settings, topics.deliveries, at_least=len(expected))
    assert pairs(records) == expected

    sent = {e["id"]: e for e in [*events.values(), b_joined]}
    for record in records:
        assert record.headers == {"content-type": b"application/json"}
        request = DeliveryRequested.model_validate_json(record.value)
        assert request.webhook_id == record.key.decode()
        delivery_id = uuid.UUID(request.delivery_id)
        assert delivery_id.version == 5
        assert delivery_id == uuid.uuid5(uuid.UUID(request.webhook_id), request.event_id)
        event = sent[request.event_id]
        assert (request.event, request.organization_id) == (
            event["event"],
            event["organization_id"],
        )
        assert request.created_at == stamps[request.event_id]
        assert request.body == render_payload(parse_event(dumps(event))).decode()
        assert "token" not in keys_anywhere(json.loads(request.body))
        assert not any(token in request.body for token in TOKENS)
        assert not any(token.encode() in record.value for token in TOKENS)


async def test_a_webhook_disabled_or_deleted_after_start_stops_receiving(
    start_fanout, producer, kafka_settings, topics
):
    org = str(uuid.uuid4())
    keep, to_disable, to_delete = (hook(org, ["participant.joined"]) for _ in range(3))
    await put_registry(producer, topics, keep, to_disable, to_delete)
    fanout = await start_fanout()
    first = room_event("participant.joined", org, ROOM_1)
    await publish_event(producer, topics, first)
    await read_topic(kafka_settings, topics.deliveries, at_least=3)

    disabled = hook(
        org, ["participant.joined"], enabled=False, revision=2, webhook_id=to_disable.id
    )
    await put_registry(producer, topics, disabled, ("delete", to_delete.id))

    async def applied() -> bool:
        return fanout.index.match(org, "participant.joined", ROOM_1, Scope.ROOM) == [keep.id]

    await eventually(applied)
    second = room_event("participant.joined", org, ROOM_1)
    await publish_event(producer, topics, second)
    await read_topic(kafka_settings, topics.deliveries, at_least=4)  # before re-enabling it

    re_enabled = hook(org, ["participant.joined"], revision=3, webhook_id=to_disable.id)
    await put_registry(producer, topics, re_enabled)

    async def re_applied() -> bool:
        return to_disable.id in fanout.index.match(org, "participant.joined", ROOM_2, Scope.ROOM)

    await eventually(re_applied)
    third = room_event("participant.joined", org, ROOM_2)
    await publish_event(producer, topics, third)

    records = await read_topic(kafka_settings, topics.deliveries, at_least=6)
    assert pairs(records) == sorted(
        [(h.id, first["id"]) for h in (keep, to_disable, to_delete)]
        + [(keep.id, second["id"])]
        + [(h.id, third["id"]) for h in (keep, to_disable)]
    )


async def test_malformed_events_go_to_the_dlq_and_the_good_ones_around_them_are_delivered(
    start_fanout, producer, kafka_settings, topics
):
    org = str(uuid.uuid4())
    webhook = hook(org, COLLAB)
    await put_registry(producer, topics, webhook)
    await start_fanout()

    wrong_types = room_event("participant.joined", org, ROOM_1) | {"timestamp": 1748513160}
    wrong_types["user"] = {"id": 42}
    no_org = room_event("session.started", org, ROOM_1)
    del no_org["organization_id"]
    unknown = room_event("session.started", org, ROOM_1) | {"event": "room.exploded"}
    bad: list[tuple[bytes | None, str]] = [
        (b'{"id": "e1", "event": "participant.joined", ', "not JSON"),
        (dumps(unknown), "unknown event 'room.exploded'"),
        (dumps(no_org), "organization_id: field required"),
        (dumps(wrong_types), "timestamp"),
        (None, "null"),
        (b"", "empty"),
    ]
    good, sent_bad = [], {}
    for value, reason in bad:
        event = room_event("participant.left", org, ROOM_1)
        good.append(event)
        await publish_event(producer, topics, event)
        metadata = await publish(producer, topics, value, ROOM_1)
        sent_bad[(metadata.partition, metadata.offset)] = (value, reason)
    last = room_event("participant.joined", org, ROOM_2)
    good.append(last)
    await publish_event(producer, topics, last)

    dead = await read_topic(kafka_settings, topics.events_dlq, at_least=len(bad))
    assert len(dead) == len(bad)
    for record in dead:
        where = (int(record.headers["rh-partition"]), int(record.headers["rh-offset"]))
        value, reason = sent_bad.pop(where)
        assert record.value == value
        assert record.key == ROOM_1.encode()
        assert record.headers["rh-topic"] == topics.events.encode()
        assert reason in record.headers["rh-error"].decode()
    assert (
        "user.id"
        in next(r for r in dead if r.value == dumps(wrong_types)).headers["rh-error"].decode()
    )

    deliveries = await read_topic(kafka_settings, topics.deliveries, at_least=len(good))
    assert pairs(deliveries) == sorted((webhook.id, e["id"]) for e in good)


async def test_commits_the_end_of_the_events_topic_once_everything_is_acknowledged(
    start_fanout, producer, kafka_settings, topics
):
    org = str(uuid.uuid4())
    await put_registry(producer, topics, hook(org, ["session.started"]))
    fanout = await start_fanout()
    ends: dict[int, int] = {}
    for n in range(12):
        value = dumps(room_event("session.started", org, f"room_{n}")) if n % 4 else b"oops"
        metadata = await publish(producer, topics, value, f"room_{n}")
        ends[metadata.partition] = max(ends.get(metadata.partition, 0), metadata.offset + 1)
    expected = {p: ends.get(p) for p in range(kafka_settings.partitions)}

    async def committed_all() -> bool:
        assert await committed_offsets(kafka_settings, topics) == expected
        return True

    await eventually(committed_all)
    await read_topic(kafka_settings, topics.deliveries, at_least=9)
    await read_topic(kafka_settings, topics.events_dlq, at_least=3)
    metrics = fanout.metrics.registry
    assert metrics.get_sample_value("roomhooks_fanout_events_consumed_total") == 12
    assert metrics.get_sample_value("roomhooks_fanout_delivery_requests_total") == 9
    assert metrics.get_sample_value("roomhooks_fanout_dlq_total", {"reason": "not_json"}) == 3


async def test_loads_the_whole_registry_before_it_is_ready(
    producer, kafka_settings, topics, fanout_settings
):
    orgs = [str(uuid.uuid4()) for _ in range(10)]
    records = [hook(orgs[n % 10], ["participant.joined"], room=None) for n in range(300)]
    await put_registry(producer, topics, *records)  # a few large batches per partition
    await put_registry(producer, topics, *(("delete", r.id) for r in records[:50]))
    port = free_port()
    settings = fanout_settings.model_copy(update={"health_port": port})
    service = Fanout(settings)
    assert not service.ready
    await service.start()
    try:
        assert service.ready
        assert service.index_size == 250
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/readyz") as resp:
                assert resp.status == 200, await resp.text()
            async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                text = await resp.text()
        assert 'roomhooks_fanout_index_webhooks{state="enabled"} 250.0' in text
        match = service.index.match(orgs[3], "participant.joined", ROOM_1, Scope.ROOM)
        assert len(match) == 25
    finally:
        service.stop()
        await service.run_until_stopped()
