"""The registry's admin module on a real Postgres: accounts, keys, and announcing again."""

from __future__ import annotations

import uuid

import pytest

from services.registry import admin
from services.registry.policy import Role
from shared.messages import registry_key
from tests.support.kafka import read_topic

pytestmark = pytest.mark.integration

HOOK = {"url": "http://127.0.0.1:9999/hook", "events": ["participant.joined"]}
FLOW = {
    "name": "noop",
    "events": ["participant.joined"],
    "code": "export default async function(event) { return {}; }",
}


async def test_a_new_key_authenticates_with_the_role_it_was_made_for(pool, registry):
    account_id = await admin.create_account(pool, "tool")
    assert await admin.account_exists(pool, account_id)
    token = await admin.create_key(pool, account_id, "ADMIN")
    resp = await registry.http.get(
        f"{registry.url}/v1/accounts/{account_id}/webhooks",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert resp.status == 200
    assert admin.ROLES == tuple(role.value for role in Role)


async def test_a_key_for_an_unknown_account_is_refused(pool):
    missing = uuid.uuid4()
    assert not await admin.account_exists(pool, missing)
    with pytest.raises(admin.NoSuchAccount):
        await admin.create_key(pool, missing, "OWNER")


async def test_keeps_an_account_whose_keys_still_fit_and_replaces_one_whose_do_not(pool):
    first, kept = await admin.keep_or_create_account(pool, "dev", admin.AccountKeys("", "", ""))
    assert not kept
    again, kept = await admin.keep_or_create_account(pool, "dev", first)
    assert kept and again == first

    swapped = admin.AccountKeys(first.account_id, first.member_token, first.owner_token)
    fresh, kept = await admin.keep_or_create_account(pool, "dev", swapped)
    assert not kept and fresh.account_id != first.account_id


async def test_reannounce_publishes_every_webhook_and_workflow_again(
    registry, pool, kafka_settings, topics
):
    r, alice = registry, registry.alice
    hook = await r.http.post(r.webhooks_url(alice), json=HOOK, headers=alice.auth())
    flow = await r.http.post(
        f"{r.url}/v1/accounts/{alice.id}/workflows", json=FLOW, headers=alice.auth()
    )
    assert (hook.status, flow.status) == (201, 201)
    hook_id = (await hook.json())["data"]["webhook"]["id"]
    flow_id = (await flow.json())["data"]["workflow"]["id"]
    while await r.relay.publish_pending():
        pass

    assert await admin.reannounce(pool, topics) == (1, 1)
    while await r.relay.publish_pending():
        pass
    records = await read_topic(kafka_settings, topics.registry, at_least=4)
    keys = [rec.key.decode() for rec in records if rec.value is not None]
    announced = {registry_key("webhook", hook_id), registry_key("workflow", flow_id)}
    assert sorted(keys) == sorted([*announced, *announced])
