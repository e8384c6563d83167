"""A per-webhook `traceparent` header on webhook requests (`sendTraceparent`, default false):
the API takes it (and shows it as `send_traceparent`, as it shows every field), refuses
anything but a boolean with a 400 naming the field, and delivery sends each attempt's span
context to a webhook that asks for it, and to no other."""

from __future__ import annotations

import pytest

from services.registry.policy import Role
from tests.integration.test_registry_api import SEED_000_BODY, create
from tests.integration.test_tracing import named, session_started, traced_platform
from tests.support.polling import eventually

pytestmark = pytest.mark.integration


async def test_send_traceparent_is_off_by_default_and_set_by_create_put_and_patch(registry):
    r, alice = registry, registry.alice
    status, answer = await create(r)
    assert status == 201
    webhook = answer["data"]["webhook"]
    assert webhook["send_traceparent"] is False
    url = r.webhooks_url(alice, webhook["id"])

    resp = await r.http.patch(url, json={"sendTraceparent": True}, headers=alice.auth())
    assert resp.status == 200
    assert (await resp.json())["data"]["webhook"]["send_traceparent"] is True
    shown = await (await r.http.get(url, headers=alice.auth(Role.MEMBER))).json()
    assert shown["data"]["webhook"]["send_traceparent"] is True
    # PATCH without it keeps it; PUT replaces every field, this one with its default.
    resp = await r.http.patch(url, json={"name": "renamed"}, headers=alice.auth())
    assert (await resp.json())["data"]["webhook"]["send_traceparent"] is True
    resp = await r.http.put(url, json=SEED_000_BODY, headers=alice.auth())
    assert resp.status == 200
    assert (await resp.json())["data"]["webhook"]["send_traceparent"] is False

    status, answer = await create(r, body={**SEED_000_BODY, "sendTraceparent": True})
    assert status == 201
    assert answer["data"]["webhook"]["send_traceparent"] is True


@pytest.mark.parametrize("value", ["true", 1, None, [], {"on": True}])
async def test_send_traceparent_that_is_not_a_boolean_is_a_400_naming_the_field(registry, value):
    r, alice = registry, registry.alice
    status, answer = await create(r, body={**SEED_000_BODY, "sendTraceparent": value})
    assert status == 400
    [detail] = answer["error"]["details"]
    assert detail["field"] == "sendTraceparent" and "boolean" in detail["message"]
    _, created = await create(r)
    url = r.webhooks_url(alice, created["data"]["webhook"]["id"])
    resp = await r.http.patch(url, json={"sendTraceparent": value}, headers=alice.auth())
    assert resp.status == 400
    [detail] = (await resp.json())["error"]["details"]
    assert detail["field"] == "sendTraceparent" and "boolean" in detail["message"]


async def test_only_a_webhook_that_asks_gets_the_attempts_traceparent(
    registry, producer, topics, kafka_settings, postgres_settings, pool
):
    async with traced_platform(
        registry, producer, topics, kafka_settings, postgres_settings,
        fanout_sampler="parentbased_always_on",
    ) as platform:  # fmt: skip
        asks = await platform.webhook("/asks", sendTraceparent=True)
        await platform.webhook("/silent")
        await platform.publish(session_started(registry.alice.id), None)

        async def both_attempted():
            posts = named(platform.spans(), "POST")
            return posts if len(posts) == 2 else None

        posts = await eventually(both_attempted, timeout_s=30)
        [asked] = platform.receiver.received["/asks"]
        [silent] = platform.receiver.received["/silent"]
    [span] = [s for s in posts if s.attributes["roomhooks.webhook_id"] == asks["id"]]
    context = span.context
    sent = {name.lower(): value for name, value in asked.headers.items()}["traceparent"]
    assert sent == f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
    assert "traceparent" not in {name.lower() for name in silent.headers}

    async def recorded():
        return await pool.fetchval(
            "SELECT a.request_headers FROM delivery.delivery_attempts a"
            " JOIN delivery.deliveries d ON d.id = a.delivery_id WHERE d.webhook_id = $1",
            asks["id"],
        )

    # The attempt's recorded headers say what was sent, the traceparent included.
    assert (await eventually(recorded, timeout_s=15))["traceparent"] == sent
