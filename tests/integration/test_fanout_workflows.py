"""The fanout service on the real broker: workflow records in, events in, run requests out."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.structs import RecordMetadata

from services.fanout.app import Fanout
from shared.events import Scope, parse_event, render_payload
from shared.kafka import Topics, dumps
from shared.messages import WebhookRecord, WorkflowRecord, WorkflowRunRequested
from shared.settings import KafkaSettings
from tests.integration.test_fanout_pipeline import (
    COLLAB,
    NOW,
    ROOM_1,
    ROOM_2,
    TOKENS,
    committed_offsets,
    hook,
    keys_anywhere,
    member_added,
    pairs,
    publish_event,
    room_event,
    stamp_of,
)
from tests.support.kafka import Record, read_topic
from tests.support.polling import eventually
from tests.support.services import free_port

pytestmark = pytest.mark.integration


def flow(
    org: str,
    events: list[str],
    *,
    room: str | None = None,
    enabled: bool = True,
    version: int = 1,
    revision: int = 1,
    workflow_id: str | None = None,
) -> WorkflowRecord:
    return WorkflowRecord(
        id=workflow_id or str(uuid.uuid4()),
        organization_id=org,
        name="greet",
        events=events,
        room_id=room,
        enabled=enabled,
        language="ts",
        version=version,
        revision=revision,
        created_at=NOW,
        updated_at=NOW,
    )


async def put_registry(producer: AIOKafkaProducer, topics: Topics, *changes) -> None:
    """Records of either kind, or `("workflow"|"webhook", id)` tombstones, sent together."""
    acks = []
    for change in changes:
        if isinstance(change, WebhookRecord | WorkflowRecord):
            key, value = f"{change.kind}:{change.id}", dumps(change.model_dump(mode="json"))
        else:
            key, value = f"{change[0]}:{change[1]}", None
        acks.append(await producer.send(topics.registry, value=value, key=key.encode()))
    await asyncio.gather(*acks)


async def publish_all(
    producer: AIOKafkaProducer,
    topics: Topics,
    events: list[dict],
    stamps: dict[str, datetime] | None = None,
) -> dict[int, int]:
    """Publish `events`; returns the end offset each touched partition will be committed to,
    and puts in `stamps` what fanout will stamp each event's requests with."""
    ends: dict[int, int] = {}
    for event in events:
        metadata: RecordMetadata = await publish_event(producer, topics, event)
        ends[metadata.partition] = max(ends.get(metadata.partition, 0), metadata.offset + 1)
        if stamps is not None:
            stamps[event["id"]] = stamp_of(metadata)
    return ends


async def all_runs_after_commit(
    settings: KafkaSettings, topics: Topics, ends: dict[int, int], *, expected: int
) -> list[Record]:
    """Every run request, read once fanout committed `ends`: by then each one was acked, so
    what the topic holds is all there will be for those events."""

    async def committed() -> bool:
        offsets = await committed_offsets(settings, topics)
        assert all((offsets.get(p) or 0) >= end for p, end in ends.items()), offsets
        return True

    await eventually(committed)
    return await read_topic(settings, topics.workflow_runs, at_least=expected)


async def test_runs_exactly_the_matching_workflows_keyed_by_workflow_id_without_tokens(
    start_fanout, producer, kafka_settings, topics
):
    org_a, org_b = str(uuid.uuid4()), str(uuid.uuid4())
    every_room = flow(org_a, COLLAB, version=3)
    room_1 = flow(org_a, COLLAB[:4], room=ROOM_1)
    room_2 = flow(org_a, COLLAB, room=ROOM_2)
    org_wide = flow(org_a, ["member.added", "user.updated"], version=2)
    org_scoped = flow(org_a, ["member.added", "user.created"], room=ROOM_1)
    disabled = flow(org_a, [*COLLAB, "member.added"], enabled=False)
    deleted = flow(org_a, [*COLLAB, "member.added"])
    stale = flow(org_a, ["session.started"], version=5, revision=3)
    stale_older = flow(org_a, COLLAB, version=4, revision=2, workflow_id=stale.id)
    other_account = flow(org_b, [*COLLAB, "member.added"])
    webhook = hook(org_a, ["participant.joined"])  # same event: both kinds get theirs
    await put_registry(
        producer, topics, every_room, room_1, room_2, org_wide, org_scoped, disabled, deleted
    )
    await put_registry(
        producer, topics, stale, ("workflow", deleted.id), stale_older, other_account, webhook
    )
    fanout = await start_fanout()
    assert (fanout.workflows_size, fanout.index_size) == (8, 1)

    events = {name: room_event(name, org_a, ROOM_1) for name in COLLAB}
    events["member.added"] = member_added(org_a)
    b_joined = room_event("participant.joined", org_b, "room_b")
    stamps: dict[str, datetime] = {}
    ends = await publish_all(producer, topics, [*events.values(), b_joined], stamps)

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
        [(w.id, events[name]["id"]) for name, flows in receivers.items() for w in flows]
        + [(other_account.id, b_joined["id"])]
    )
    records = await all_runs_after_commit(kafka_settings, topics, ends, expected=len(expected))
    assert pairs(records) == expected

    versions = {w.id: w.version for w in (every_room, room_1, org_wide, org_scoped, stale)}
    versions[other_account.id] = 1
    sent = {e["id"]: e for e in [*events.values(), b_joined]}
    for record in records:
        assert record.headers == {"content-type": b"application/json"}
        run = WorkflowRunRequested.model_validate_json(record.value)
        assert run.workflow_id == record.key.decode()
        assert run.run_id == str(uuid.uuid5(uuid.UUID(run.workflow_id), run.event_id))
        assert run.version == versions[run.workflow_id]
        event = sent[run.event_id]
        assert run.organization_id == event["organization_id"]
        assert run.room_id == (event["room"]["id"] if event.get("room") else None)
        assert run.created_at == stamps[run.event_id]
        assert run.event == json.loads(render_payload(parse_event(dumps(event))))
        assert "token" not in keys_anywhere(run.event)
        assert not any(token.encode() in record.value for token in TOKENS)

    deliveries = await read_topic(kafka_settings, topics.deliveries, at_least=1)
    assert pairs(deliveries) == [(webhook.id, events["participant.joined"]["id"])]
    metrics = fanout.metrics.registry
    assert metrics.get_sample_value("roomhooks_fanout_workflow_run_requests_total") == len(expected)
    assert metrics.get_sample_value("roomhooks_fanout_delivery_requests_total") == 1


async def test_a_workflow_changed_after_start_runs_its_new_version_or_not_at_all(
    start_fanout, producer, kafka_settings, topics
):
    org = str(uuid.uuid4())
    bumped, to_disable, to_delete = (flow(org, ["participant.joined"]) for _ in range(3))
    await put_registry(producer, topics, bumped, to_disable, to_delete)
    fanout = await start_fanout()
    first = room_event("participant.joined", org, ROOM_1)
    ends = await publish_all(producer, topics, [first])
    await all_runs_after_commit(kafka_settings, topics, ends, expected=3)

    await put_registry(
        producer,
        topics,
        flow(org, ["participant.joined"], version=2, revision=2, workflow_id=bumped.id),
        flow(org, ["participant.joined"], enabled=False, revision=2, workflow_id=to_disable.id),
        ("workflow", to_delete.id),
    )

    async def applied() -> bool:
        held = fanout.workflows.get(bumped.id)
        matched = fanout.workflows.match(org, "participant.joined", ROOM_1, Scope.ROOM)
        return held is not None and held.version == 2 and matched == [bumped.id]

    await eventually(applied)
    second = room_event("participant.joined", org, ROOM_1)
    ends = await publish_all(producer, topics, [second])
    records = await all_runs_after_commit(kafka_settings, topics, ends, expected=4)

    assert pairs(records) == sorted(
        [(w.id, first["id"]) for w in (bumped, to_disable, to_delete)] + [(bumped.id, second["id"])]
    )
    versions = {
        (run.workflow_id, run.event_id): run.version
        for run in (WorkflowRunRequested.model_validate_json(r.value) for r in records)
    }
    assert versions[(bumped.id, first["id"])] == 1
    assert versions[(bumped.id, second["id"])] == 2


async def test_loads_every_workflow_before_it_is_ready(
    producer, kafka_settings, topics, fanout_settings
):
    orgs = [str(uuid.uuid4()) for _ in range(10)]
    records = [flow(orgs[n % 10], ["participant.joined"]) for n in range(200)]
    await put_registry(producer, topics, *records, hook(orgs[0], ["participant.joined"]))
    await put_registry(producer, topics, *(("workflow", r.id) for r in records[:40]))
    await put_registry(
        producer, topics, *(flow(r.organization_id, r.events, enabled=False, revision=2,
                                 workflow_id=r.id) for r in records[40:50])
    )  # fmt: skip
    port = free_port()
    settings = fanout_settings.model_copy(update={"health_port": port})
    service = Fanout(settings)
    await service.start()
    try:
        assert service.ready
        assert (service.workflows_size, service.index_size) == (160, 1)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/readyz") as resp:
                assert resp.status == 200, await resp.text()
            async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                text = await resp.text()
        assert 'roomhooks_fanout_index_workflows{state="enabled"} 150.0' in text
        assert 'roomhooks_fanout_index_workflows{state="disabled"} 10.0' in text
        assert 'roomhooks_fanout_index_webhooks{state="enabled"} 1.0' in text
        match = service.workflows.match(orgs[3], "participant.joined", ROOM_1, Scope.ROOM)
        assert len(match) == 15  # 20, less 4 deleted and 1 disabled
    finally:
        service.stop()
        await service.run_until_stopped()
