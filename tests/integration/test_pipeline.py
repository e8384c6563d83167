"""End to end, in one process: registry -> outbox -> fanout -> delivery -> a real receiver."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook as StandardWebhook

from services.delivery.app import Delivery
from services.delivery.settings import DeliverySettings
from services.fanout.app import Fanout
from services.fanout.settings import FanoutSettings
from shared.events import Scope, build_event, event_names
from shared.kafka import JSON_HEADERS, dumps
from tests.support.polling import eventually
from tests.support.receiver import Receiver

pytestmark = pytest.mark.integration

ROOM = {"id": "c3003c93-60cf-4184-b85f-20be14d26dac", "name": "Design review — Zoé 日本"}
ADA = {"id": "user-001", "name": "Ada", "token": "secret-token-ada"}
GRACE = {"id": "user-002", "name": "Grace", "token": "secret-token-grace"}
COLLAB_EVENTS = event_names(Scope.ROOM)[:7]

# What the CollabKit webhooks guide's Express receiver does: HMAC of JSON.stringify(req.body),
# compared in constant time.
EXPRESS_VERIFY = r"""
const { createHmac, timingSafeEqual } = require('crypto');
const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));
console.log(JSON.stringify(cases.map(({ body, signature, secret }) => {
  const reBody = JSON.stringify(JSON.parse(body));
  const expected = createHmac('sha256', secret).update(reBody).digest('hex');
  return reBody === body && expected.length === signature.length &&
    timingSafeEqual(Buffer.from(expected), Buffer.from(signature));
})));
"""


def express_verifies(cases: list[dict]) -> list[bool]:
    node = shutil.which("node")
    assert node, "node is needed to check signatures as the guide's Express receiver does"
    done = subprocess.run(
        [node, "-e", EXPRESS_VERIFY],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return json.loads(done.stdout)


class Platform:
    def __init__(self, registry, producer, topics, fanout: Fanout, receiver: Receiver):
        self.registry, self.producer, self.topics = registry, producer, topics
        self.fanout, self.receiver = fanout, receiver

    async def webhook(self, account, path: str, events: list[str], **fields) -> dict:
        r = self.registry
        body = {"url": self.receiver.url(path), "events": events, **fields}
        resp = await r.http.post(r.webhooks_url(account), json=body, headers=account.auth())
        assert resp.status == 201, await resp.text()
        webhook = (await resp.json())["data"]["webhook"]

        async def indexed():
            held = self.fanout.index.get(webhook["id"])
            return held is not None

        await eventually(indexed, timeout_s=15)
        return webhook

    async def change(self, account, webhook: dict, **fields) -> None:
        r = self.registry
        url = r.webhooks_url(account, webhook["id"])
        resp = await r.http.patch(url, json=fields, headers=account.auth())
        assert resp.status == 200
        revision = self.fanout.index.get(webhook["id"]).revision

        async def applied():
            return self.fanout.index.get(webhook["id"]).revision > revision

        await eventually(applied, timeout_s=15)

    async def publish(self, event: dict) -> None:
        key = (event["room"] or {}).get("id") or event["organization_id"]
        await self.producer.send_and_wait(
            self.topics.events, dumps(event), key=key.encode(), headers=JSON_HEADERS
        )

    def bodies(self, path: str) -> list[dict]:
        return [json.loads(r.body) for r in self.receiver.received[path]]


@pytest.fixture
async def platform(
    registry, producer, topics, kafka_settings, postgres_settings
) -> AsyncIterator[Platform]:
    receiver = Receiver()
    await receiver.start()
    relay = asyncio.create_task(registry.relay.run())
    fanout = Fanout(FanoutSettings(kafka=kafka_settings, postgres=postgres_settings, health_port=0))
    await fanout.start()
    serving = asyncio.create_task(fanout.run_until_stopped())
    delivery = Delivery(
        DeliverySettings(
            postgres=postgres_settings,
            kafka=kafka_settings,
            health_port=0,
            scheduler_interval_s=0.1,
        )
    )
    await delivery.start()
    try:
        yield Platform(registry, producer, topics, fanout, receiver)
    finally:
        await delivery.stop()
        fanout.stop()
        await serving
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay
        await receiver.stop()


def event(name: str, org: str, **payload) -> dict:
    return build_event(event=name, organization_id=org, now=datetime.now(UTC), **payload)


def collab_event(name: str, org: str, room: dict = ROOM) -> dict:
    if name == "session.started":
        return event(name, org, room=room)
    if name == "session.closed":
        return event(name, org, room=room, users=[ADA, GRACE])
    if name.startswith("user."):
        return event(name, org, room={"id": room["id"]}, user=ADA)
    return event(name, org, room=room, user=ADA)


async def test_all_seven_collab_events_arrive_signed_in_the_002_shape(platform, registry):
    alice = registry.alice
    webhook = await platform.webhook(alice, "/all", COLLAB_EVENTS)
    sent = {name: collab_event(name, alice.id) for name in COLLAB_EVENTS}
    for e in sent.values():
        await platform.publish(e)

    async def all_arrived():
        return len(platform.receiver.received["/all"]) == len(COLLAB_EVENTS)

    await eventually(all_arrived, timeout_s=30)
    received = platform.receiver.received["/all"]
    by_event = {json.loads(r.body)["event"]: r for r in received}
    assert set(by_event) == set(COLLAB_EVENTS)
    for name, got in by_event.items():
        body = json.loads(got.body)
        assert list(body)[:3] == ["id", "event", "timestamp"]
        assert body["id"] == sent[name]["id"]
        assert body["timestamp"].endswith("Z") and len(body["timestamp"]) == 24
        assert body["room"]["id"] == ROOM["id"]
        assert body["data"]["roomId"] == ROOM["id"]
        assert b"token" not in got.body and b"secret-token" not in got.body
        if name == "session.closed":
            assert [u["id"] for u in body["users"]] == ["user-001", "user-002"]
        elif name != "session.started":
            assert body["user"] == {"id": "user-001", "name": "Ada"}
            assert body["data"]["userId"] == "user-001"
        if name.startswith("participant.") or name.startswith("session."):
            assert body["room"]["name"] == ROOM["name"]
        assert got.headers["X-Webhook-Event"] == name
        StandardWebhook(webhook["secret"]).verify(got.body, got.headers)
    verdicts = express_verifies(
        [
            {
                "body": r.body.decode(),
                "signature": r.headers["X-Webhook-Signature"],
                "secret": webhook["secret"],
            }
            for r in received
        ]
    )
    assert verdicts == [True] * len(COLLAB_EVENTS)


async def test_each_event_reaches_exactly_the_subscribed_endpoints(platform, registry):
    alice, bob = registry.alice, registry.bob
    other_room = {"id": "room-two", "name": "Other"}
    scoped = await platform.webhook(alice, "/scoped", ["participant.joined"], roomId=ROOM["id"])
    everywhere = await platform.webhook(
        alice, "/everywhere", ["participant.joined", "member.added"]
    )
    disabled = await platform.webhook(alice, "/disabled", ["participant.joined"])
    await platform.change(alice, disabled, enabled=False)
    other_event = await platform.webhook(alice, "/sessions", ["session.started"])
    bobs = await platform.webhook(bob, "/bob", ["participant.joined"])
    assert scoped and everywhere and other_event and bobs

    in_room = collab_event("participant.joined", alice.id)
    elsewhere = collab_event("participant.joined", alice.id, room=other_room)
    org_event = event("member.added", alice.id, extra={"member": {"id": "m1", "role": "ADMIN"}})
    bob_event = collab_event("participant.joined", bob.id)
    for e in (in_room, elsewhere, org_event, bob_event):
        await platform.publish(e)

    async def settled():
        return sum(len(v) for v in platform.receiver.received.values()) >= 5

    await eventually(settled, timeout_s=30)
    await asyncio.sleep(1)  # let any wrong extra delivery show up before we count
    ids = {
        path: sorted(b["id"] for b in platform.bodies(path))
        for path in ("/scoped", "/everywhere", "/disabled", "/sessions", "/bob")
    }
    assert ids == {
        "/scoped": [in_room["id"]],
        "/everywhere": sorted([in_room["id"], elsewhere["id"], org_event["id"]]),
        "/disabled": [],
        "/sessions": [],
        "/bob": [bob_event["id"]],
    }
    [org_body] = [b for b in platform.bodies("/everywhere") if b["event"] == "member.added"]
    assert org_body["member"] == {"id": "m1", "role": "ADMIN"} and "room" not in org_body
