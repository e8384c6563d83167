"""The account's event log end to end: events published to the real broker, recorded by fanout,
delivered by the delivery service to a real receiver, listed and shown by the registry."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from services.workflow_runner import executions
from shared.events import build_event
from shared.kafka import JSON_HEADERS, dumps
from shared.messages import WorkflowRunRequested, delivery_id_for, run_id_for
from tests.integration import test_pipeline
from tests.support.polling import eventually
from tests.support.tenants import WORKFLOW_CODE

pytestmark = pytest.mark.integration

# The registry, its relay, fanout and delivery running, and a receiver: test_pipeline.py's.
platform = test_pipeline.platform
ROOM = {"id": "room-log", "name": "Log room"}
ADA = {"id": "user-ada", "name": "Ada", "token": "secret-token-ada"}


@dataclass
class EventLog:
    """The event log's routes, and the events topic, on the platform of test_pipeline.py."""

    platform: Any

    def url(self, account, suffix: str = "") -> str:
        account_id = account if isinstance(account, str) else account.id
        return f"{self.platform.registry.url}/v1/accounts/{account_id}/events{suffix}"

    async def get(self, account, suffix: str = "", key=None, **params: str) -> tuple[int, Any]:
        http, headers = self.platform.registry.http, (key or account).auth()
        resp = await http.get(self.url(account, suffix), params=params, headers=headers)
        return resp.status, await resp.json()

    async def publish(self, value: dict | bytes) -> None:
        """Onto one partition, so the log's order is the order published."""
        raw = value if isinstance(value, bytes) else dumps(value)
        await self.platform.producer.send_and_wait(
            self.platform.topics.events, raw, key=b"k", headers=JSON_HEADERS
        )

    async def listed(self, account, at_least: int, **params: str) -> list[dict]:
        async def enough():
            status, body = await self.get(account, limit="100", **params)
            assert status == 200, body
            events = body["data"]["events"]
            return events if len(events) >= at_least else None

        return await eventually(enough, timeout_s=30, interval_s=0.1)

    async def workflow(self, account) -> dict:
        registry = self.platform.registry
        body = {"name": "f", "events": ["participant.joined"], "code": WORKFLOW_CODE}
        url = f"{registry.url}/v1/accounts/{account.id}/workflows"
        resp = await registry.http.post(url, json=body, headers=account.auth())
        assert resp.status == 201, await resp.text()
        made = (await resp.json())["data"]["workflow"]

        async def indexed() -> bool:
            return self.platform.fanout.workflows.get(made["id"]) is not None

        await eventually(indexed, timeout_s=15)
        return made


@pytest.fixture
def log(platform) -> EventLog:
    return EventLog(platform)


def joined(org: str, room: dict = ROOM, **fields: Any) -> dict:
    """An event that happened now. The log orders by when events happened, to the
    millisecond their timestamps carry: the tests' events are a few milliseconds apart."""
    time.sleep(0.003)
    return build_event(
        event="participant.joined", organization_id=org, room=room, user=ADA,
        now=datetime.now(UTC), **fields,
    )  # fmt: skip


async def test_events_accepted_and_rejected_are_listed_and_shown_with_whom_they_reached(
    platform, log, registry, pool
):
    alice, bob = registry.alice, registry.bob
    hook = await platform.webhook(alice, "/log", ["participant.joined"])
    flow = await log.workflow(alice)
    reached = joined(alice.id)
    time.sleep(0.003)
    unsubscribed = build_event(
        event="session.started", organization_id=alice.id, room=ROOM, now=datetime.now(UTC)
    )
    for value in (reached, unsubscribed, joined(bob.id)):
        await log.publish(value)
    bad = {**joined(alice.id), "room": {"name": "no id"}}
    await log.publish(bad)
    await log.publish(b"not json at all")

    logged = await log.listed(alice, at_least=4)  # the registry's webhook.created is one
    assert [e["event"] for e in logged].count("webhook.created") == 1
    events = [e for e in logged if e["event"] != "webhook.created"]
    assert [(e["id"], e["event"], e["status"]) for e in events] == [
        (bad["id"], "participant.joined", "rejected"),
        (unsubscribed["id"], "session.started", "accepted"),
        (reached["id"], "participant.joined", "accepted"),
    ]
    assert events[0]["reason"].startswith("room.id")
    assert [(e["webhooks"], e["workflows"]) for e in events] == [(0, 0), (0, 0), (1, 1)]
    assert all(reached["id"] != e["id"] for e in await log.listed(bob, at_least=1))

    delivery_id = delivery_id_for(hook["id"], reached["id"])

    async def delivered():
        status, body = await log.get(alice, f"/{reached['id']}")
        assert status == 200, body
        webhooks = body["data"]["webhooks"]
        return body["data"] if webhooks[0]["status"] == "success" else None

    shown = await eventually(delivered, timeout_s=30, interval_s=0.1)
    assert shown["webhooks"] == [
        {"webhook_id": hook["id"], "delivery_id": delivery_id, "status": "success"}
    ]
    run_id = run_id_for(flow["id"], reached["id"])
    assert shown["workflows"] == [
        {"workflow_id": flow["id"], "execution_id": run_id, "status": None}
    ]
    [received] = platform.receiver.received["/log"]
    assert shown["payload"] == received.body.decode() and "secret-token" not in shown["payload"]

    await _runner_records(pool, flow, reached, run_id)
    resp = await registry.http.delete(
        registry.webhooks_url(alice, hook["id"]), headers=alice.auth()
    )
    assert resp.status == 200
    status, body = await log.get(alice, f"/{reached['id']}")
    assert status == 200
    assert body["data"]["webhooks"][0]["status"] == "success"  # the webhook is gone, not its log
    assert body["data"]["workflows"][0]["status"] == "running"


async def _runner_records(pool, flow: dict, event: dict, run_id: str) -> None:
    """The execution as the workflow runner records it when the run begins."""
    run = WorkflowRunRequested(
        run_id=run_id,
        workflow_id=flow["id"],
        version=flow["version"],
        organization_id=flow["organization_id"],
        room_id=ROOM["id"],
        event_id=event["id"],
        event=event,
        created_at=datetime.now(UTC),
    )
    async with pool.acquire() as conn:
        assert await executions.begin(conn, run, now=datetime.now(UTC))


async def test_filters_and_the_cursor_narrow_and_walk_the_log(log, registry):
    alice = registry.alice
    other_room = {"id": "room-other", "name": "Other"}
    sent = [joined(alice.id, room=ROOM if n % 2 else other_room) for n in range(6)]
    for value in sent:
        await log.publish(value)
    everything = await log.listed(alice, at_least=6)
    assert [e["id"] for e in everything] == [e["id"] for e in sent[::-1]]

    in_room = await log.listed(alice, at_least=3, roomId=ROOM["id"])
    assert [e["id"] for e in in_room] == [e["id"] for e in sent[::-1] if e["room"] == ROOM]
    status, body = await log.get(alice, event="session.started")
    assert (status, body["data"]["events"]) == (200, [])
    status, body = await log.get(alice, status="rejected")
    assert (status, body["data"]["events"]) == (200, [])

    # Shown to the millisecond (as every timestamp), so events read within one are on the
    # same side of it.
    middle = everything[2]["received_at"]
    status, body = await log.get(alice, since=middle, limit="100")
    since = [e["id"] for e in everything if e["received_at"] >= middle]
    assert [e["id"] for e in body["data"]["events"]] == since and len(since) >= 3
    status, body = await log.get(alice, until=middle, limit="100")
    assert [e["id"] for e in body["data"]["events"]] == [e["id"] for e in everything[len(since) :]]

    walked, cursor = [], None
    while True:
        params = {"limit": "4", **({"cursor": cursor} if cursor else {})}
        status, body = await log.get(alice, **params)
        walked += [e["id"] for e in body["data"]["events"]]
        cursor = body["data"]["next_cursor"]
        if cursor is None:
            break
    assert walked == [e["id"] for e in everything]


async def test_another_accounts_event_is_404_and_its_key_is_refused(log, registry):
    alice, bob = registry.alice, registry.bob
    secret = joined(alice.id)
    await log.publish(secret)
    await log.listed(alice, at_least=1)
    status, _ = await log.get(bob, f"/{secret['id']}")
    assert status == 404
    status, _ = await log.get(alice, f"/{secret['id']}", key=bob)
    assert status == 403
    status, _ = await log.get(alice, key=bob)
    assert status == 403
    status, body = await log.get(bob)
    assert status == 200 and secret["id"] not in str(body)
    status, _ = await log.get(alice, f"/{uuid.uuid4()}")
    assert status == 404


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("event", "participant.jumped"),
        ("roomId", "r" * 201),
        ("status", "pending"),
        ("since", "last tuesday"),
        ("until", "2026-05-29T10:06:00"),
        ("limit", "0"),
        ("cursor", "not-a-cursor"),
    ],
)
async def test_bad_input_for_each_query_field_is_a_400_naming_it(registry, field, value):
    alice = registry.alice
    url = f"{registry.url}/v1/accounts/{alice.id}/events"
    resp = await registry.http.get(url, params={field: value}, headers=alice.auth())
    body = await resp.json()
    assert resp.status == 400, body
    assert [d["field"] for d in body["error"]["details"]] == [field]
