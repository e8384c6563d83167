"""Auto-disable end to end on the real broker, Postgres and a local receiver, with the setting
at 2 s: an endpoint that always fails is disabled with the reason, a webhook subscribed to
`webhook.disabled` receives the event, a healthy webhook stays enabled, and a second sweep
orders nothing more. The sweep runs as delivery's upkeep runs it, over the real store."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest

from services.fanout.app import Fanout
from services.fanout.settings import FanoutSettings
from services.registry.app import WEBHOOKS
from services.registry.commands import commands_applied
from tests.support.deliveries import create_webhook, request_deliveries, running_delivery
from tests.support.kafka import read_topic
from tests.support.polling import eventually
from tests.support.receiver import Receiver, Script

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def fanout_and_relay(registry, kafka_settings, postgres_settings):
    relay = asyncio.create_task(registry.relay.run())
    fanout = Fanout(FanoutSettings(kafka=kafka_settings, postgres=postgres_settings, health_port=0))
    await fanout.start()
    serving = asyncio.create_task(fanout.run_until_stopped())
    try:
        yield
    finally:
        fanout.stop()
        await serving
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay


async def test_a_failing_endpoint_is_disabled_and_its_account_told(
    registry, pool, producer, topics, kafka_settings, postgres_settings
):
    receiver = Receiver()
    await receiver.start()
    failing = await create_webhook(registry, receiver.script("/down", Script(statuses=[503])))
    healthy = await create_webhook(registry, receiver.script("/up", Script(statuses=[200])))
    await create_webhook(  # the account's other webhook, told of the disable
        registry, receiver.script("/watch", Script(statuses=[200])), events=["webhook.disabled"]
    )
    webhooks = registry.app[WEBHOOKS]
    try:
        async with (
            fanout_and_relay(registry, kafka_settings, postgres_settings),
            commands_applied(kafka_settings, webhooks),
            running_delivery(
                postgres_settings,
                kafka_settings,
                retry_schedule=[0.1],
                disable_after_s=2,
                upkeep_interval_s=0.2,
            ),
        ):
            await request_deliveries(producer, topics.deliveries, failing, ["e1"])
            await request_deliveries(producer, topics.deliveries, healthy, ["e1"])

            async def disabled() -> bool:  # by the delivery service's own upkeep sweep
                found = await webhooks.get(registry.alice.id, failing["id"])
                return not found.enabled

            await eventually(disabled, timeout_s=30)

            async def told() -> bool:
                return bool(receiver.received["/watch"])

            await eventually(told, timeout_s=30)

            await asyncio.sleep(1)  # five more sweeps: nothing failed for good since the order
            assert (await webhooks.get(registry.alice.id, healthy["id"])).enabled
            reason = (await webhooks.get(registry.alice.id, failing["id"])).disabled_reason
    finally:
        await receiver.stop()

    assert "no successful attempt for over 2 s" in reason and "HTTP 503" in reason
    [told] = receiver.received["/watch"]
    event = json.loads(told.body)
    assert event["event"] == "webhook.disabled"
    assert event["webhook"]["id"] == failing["id"] and event["webhook"]["enabled"] is False
    assert event["reason"] == reason
    assert len(receiver.received["/down"]) == 2  # the first attempt and one retry
    orders = await read_topic(kafka_settings, topics.registry_commands, at_least=1)
    assert [json.loads(o.value)["webhook_id"] for o in orders] == [failing["id"]]  # once
