"""Pause keeps work, on the real broker, Postgres and a local receiver: a disabled webhook
holds its pending and retrying deliveries (pending, no next attempt) and the requests that
arrive meanwhile; enabling it resumes them in order of creation; a 410 disables it the same
way; deleting it fails what it holds."""

from __future__ import annotations

import uuid

import pytest

from services.registry.app import WEBHOOKS
from services.registry.commands import commands_applied
from tests.support.deliveries import create_webhook, request_deliveries, running_delivery
from tests.support.polling import eventually
from tests.support.receiver import Script

pytestmark = pytest.mark.integration

# One attempt at a time to the webhook, so the receiver sees the order they were sent in.
IN_ORDER = {"per_webhook_concurrency": 1, "upkeep_interval_s": 0.2}


async def set_enabled(registry, webhook: dict, enabled: bool) -> None:
    """Through the API, then published: the delivery service hears of it on the topic."""
    url = registry.webhooks_url(registry.alice, webhook["id"])
    resp = await registry.http.patch(url, json={"enabled": enabled}, headers=registry.alice.auth())
    assert resp.status == 200, await resp.text()
    await registry.relay.publish_pending()


async def rows(pool, ids: list[str]) -> list:
    found = await pool.fetch(
        "SELECT id::text, status, attempts, next_attempt_at, lease_until, last_error"
        " FROM delivery.deliveries WHERE id = ANY($1::uuid[])",
        [uuid.UUID(i) for i in ids],
    )
    by_id = {r["id"]: r for r in found}
    return [by_id.get(i) for i in ids]


async def seen_disabled(delivery, webhook: dict) -> None:
    """Until an attempt would see the webhook disabled (the registry's record has come)."""

    async def disabled():
        target = await delivery.targets.get(uuid.UUID(webhook["id"]))
        return target is not None and not target.enabled

    await eventually(disabled, timeout_s=20)


async def held(pool, ids: list[str]) -> bool:
    found = await rows(pool, ids)
    return all(
        r is not None and r["status"] == "pending" and r["next_attempt_at"] is None for r in found
    )


async def test_pause_keeps_pending_and_retrying_deliveries_and_enable_resumes_them_in_order(
    registry, pool, producer, topics, receiver, postgres_settings, kafka_settings
):
    url = receiver.script("/paused", Script(statuses=[503]))
    webhook = await create_webhook(registry, url, retrySchedule=[5, 5, 5])
    async with running_delivery(postgres_settings, kafka_settings, **IN_ORDER) as delivery:
        [retrying] = await request_deliveries(producer, topics.deliveries, webhook, ["e0"])

        async def attempted_once():
            [row] = await rows(pool, [retrying])
            return row is not None and row["attempts"] == 1

        await eventually(attempted_once)
        await set_enabled(registry, webhook, False)
        await seen_disabled(delivery, webhook)
        arrived = await request_deliveries(producer, topics.deliveries, webhook, ["e1", "e2"])
        ids = [retrying, *arrived]
        await eventually(lambda: held(pool, ids), timeout_s=20)
        assert len(receiver.received["/paused"]) == 1  # nothing sent while disabled

        listed = await registry.http.get(
            registry.webhooks_url(registry.alice, webhook["id"]) + "/deliveries",
            headers=registry.alice.auth(),
        )
        shown = (await listed.json())["data"]["deliveries"]
        assert {(d["status"], d["next_retry_at"]) for d in shown} == {("pending", None)}

        receiver.script("/paused", Script(statuses=[200]))
        await set_enabled(registry, webhook, True)

        async def all_succeeded():
            return {r["status"] for r in await rows(pool, ids)} == {"success"}

        await eventually(all_succeeded, timeout_s=20)
    sent = [r.headers["webhook-id"] for r in receiver.received["/paused"]]
    assert sent == [retrying, *ids]  # e0's first attempt, then all in order of creation
    assert [r["attempts"] for r in await rows(pool, ids)] == [2, 1, 1]


async def test_a_410_holds_what_follows_and_enabling_the_webhook_resumes_it(
    registry, pool, producer, topics, receiver, postgres_settings, kafka_settings
):
    url = receiver.script("/gone", Script(statuses=[410, 200]))
    webhook = await create_webhook(registry, url)
    async with (
        commands_applied(kafka_settings, registry.app[WEBHOOKS]),
        running_delivery(postgres_settings, kafka_settings, **IN_ORDER),
    ):
        [gone] = await request_deliveries(producer, topics.deliveries, webhook, ["e1"])

        async def disabled():
            found = await registry.app[WEBHOOKS].get(registry.alice.id, webhook["id"])
            return not found.enabled

        await eventually(disabled, timeout_s=20)
        await registry.relay.publish_pending()
        [later] = await request_deliveries(producer, topics.deliveries, webhook, ["e2"])
        await eventually(lambda: held(pool, [later]), timeout_s=20)
        assert len(receiver.received["/gone"]) == 1

        await set_enabled(registry, webhook, True)

        async def sent():
            [row] = await rows(pool, [later])
            return row["status"] == "success"

        await eventually(sent, timeout_s=20)
    [first] = await rows(pool, [gone])
    assert (first["status"], first["attempts"]) == ("failed", 1)  # recover can send it again


async def test_deleting_a_paused_webhook_fails_what_it_holds(
    registry, pool, producer, topics, receiver, postgres_settings, kafka_settings
):
    webhook = await create_webhook(registry, receiver.script("/deleted", Script()))
    async with running_delivery(postgres_settings, kafka_settings, **IN_ORDER):
        await set_enabled(registry, webhook, False)
        ids = await request_deliveries(producer, topics.deliveries, webhook, ["e1", "e2"])
        await eventually(lambda: held(pool, ids), timeout_s=20)
        resp = await registry.http.delete(
            registry.webhooks_url(registry.alice, webhook["id"]), headers=registry.alice.auth()
        )
        assert resp.status == 200
        await registry.relay.publish_pending()

        async def failed():
            found = await rows(pool, ids)
            return {(r["status"], r["last_error"]) for r in found} == {
                ("failed", "webhook deleted")
            }

        await eventually(failed, timeout_s=20)
    assert receiver.received["/deleted"] == []
