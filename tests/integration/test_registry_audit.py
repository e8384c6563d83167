"""The audit log on the real registry, Postgres and broker: each write through the API leaves
exactly one entry naming its key (never a secret or a header value), a refused write none, a
410's order on the commands topic one of the platform's; and what bad input gets."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from services.registry.app import WEBHOOKS
from services.registry.commands import commands_applied
from services.registry.policy import Role
from shared.kafka import JSON_HEADERS
from shared.messages import DisableWebhook
from tests.support.polling import eventually
from tests.support.tenants import WORKFLOW_CODE, seed_account

pytestmark = pytest.mark.integration

HEADER_VALUE = "Bearer header-credential-7f3a"
NEW_HEADER_VALUE = "Bearer header-credential-9c1e"


def audit_url(registry, account) -> str:
    return f"{registry.url}/v1/accounts/{account.id}/audit-log"


async def stored(pool, account_id: str) -> list[dict]:
    """The account's audit rows as Postgres holds them, newest first, as text."""
    rows = await pool.fetch(
        "SELECT action, actor, key_id::text, role, target_id, changes::text, row_to_json(a)::text"
        " AS whole FROM registry.audit_log a WHERE account_id = $1"
        " ORDER BY created_at DESC, id DESC",
        uuid.UUID(account_id),
    )
    return [dict(r) for r in rows]


async def key_id(registry, account, role: Role) -> str:
    resp = await registry.http.get(f"{registry.url}/v1/me", headers=account.auth(role))
    return (await resp.json())["data"]["key_id"]


async def test_each_write_through_the_api_leaves_one_entry_naming_its_key_and_no_secret(
    registry, pool
):
    alice = registry.alice
    seeded = await seed_account(registry, pool, alice)  # four writes by alice's OWNER key
    owner, admin = (
        await key_id(registry, alice, Role.OWNER),
        await key_id(registry, alice, Role.ADMIN),
    )
    assert [(r["action"], r["key_id"]) for r in await stored(pool, alice.id)] == [
        ("api_key.created", owner),
        ("webhook.recovery_requested", owner),
        ("workflow.created", owner),
        ("webhook.created", owner),
        *[("api_key.created", None)] * 3,  # the account's first keys, minted by the admin CLI
    ]
    base = f"{registry.url}/v1/accounts/{alice.id}"
    hook = f"{base}/webhooks/{seeded.webhook['id']}"
    flow = f"{base}/workflows/{seeded.workflow['id']}"
    new_code = WORKFLOW_CODE.replace("seen ", "seen again ")
    secrets = [seeded.webhook["secret"], seeded.api_key["key"], HEADER_VALUE, NEW_HEADER_VALUE]
    writes = [
        ("PATCH", hook, {"name": "renamed", "headers": {"Authorization": HEADER_VALUE}},
         "webhook.updated", seeded.webhook["id"]),
        ("PUT", hook, {"url": "https://put.example.com/in", "events": ["participant.joined"],
                       "headers": {"Authorization": NEW_HEADER_VALUE}},
         "webhook.updated", seeded.webhook["id"]),
        ("POST", hook + "/rotate-secret", {"overlapSeconds": 60},
         "webhook.secret_rotated", seeded.webhook["id"]),
        ("POST", hook + "/test", None, "webhook.test_sent", seeded.webhook["id"]),
        ("POST", f"{hook}/deliveries/{seeded.delivery_id}/redeliver", None,
         "delivery.redelivered", seeded.delivery_id),
        ("PATCH", flow, {"code": new_code}, "workflow.updated", seeded.workflow["id"]),
        ("DELETE", flow, None, "workflow.deleted", seeded.workflow["id"]),
        ("DELETE", hook, None, "webhook.deleted", seeded.webhook["id"]),
    ]  # fmt: skip
    for method, url, body, action, target in writes:
        before = len(await stored(pool, alice.id))
        resp = await registry.http.request(method, url, json=body, headers=alice.auth(Role.ADMIN))
        assert resp.status in (200, 202), await resp.text()
        if action == "webhook.secret_rotated":
            secrets.append((await resp.json())["data"]["webhook"]["secret"])
        rows = await stored(pool, alice.id)
        assert len(rows) == before + 1, method + " " + url
        assert (rows[0]["action"], rows[0]["target_id"]) == (action, target)
        assert (rows[0]["actor"], rows[0]["key_id"], rows[0]["role"]) == ("key", admin, "ADMIN")
    revoke = f"{base}/api-keys/{seeded.api_key['id']}"
    assert (await registry.http.delete(revoke, headers=alice.auth())).status == 200
    rows = await stored(pool, alice.id)
    assert (rows[0]["action"], rows[0]["key_id"]) == ("api_key.revoked", owner)

    by_action = {r["action"]: json.loads(r["changes"]) for r in reversed(rows)}
    masked = {"field": "headers", "value": {"Authorization": "****"}}
    assert masked in by_action["webhook.updated"]
    assert by_action["workflow.updated"] == [
        {"field": "version", "value": 2},
        {"field": "code", "hidden": True},
    ]
    everything = "\n".join(r["whole"] for r in rows)
    assert [s for s in secrets if s in everything] == []
    assert "seen again" not in everything and "console.log" not in everything


async def test_a_refused_write_leaves_no_entry(registry, pool):
    alice, bob = registry.alice, registry.bob
    seeded = await seed_account(registry, pool, alice)
    before = await stored(pool, alice.id)
    hook = registry.webhooks_url(alice, seeded.webhook["id"])
    refused = [
        ("PATCH", hook, {"name": "x"}, alice.auth(Role.MEMBER), 403),
        ("PATCH", hook, {"name": "x"}, bob.auth(), 403),
        ("PATCH", hook, {"url": "ftp://nope"}, alice.auth(), 400),
        ("PATCH", hook, {"events": ["webhook.created"], "roomId": "r1"}, alice.auth(), 400),
        ("DELETE", registry.webhooks_url(alice, str(uuid.uuid4())), None, alice.auth(), 404),
        ("POST", hook + "/recover", {"since": "2999-01-01T00:00:00Z"}, alice.auth(), 400),
        ("DELETE", f"{registry.url}/v1/accounts/{alice.id}/api-keys/{uuid.uuid4()}", None,
         alice.auth(), 404),
    ]  # fmt: skip
    for method, url, body, auth, status in refused:
        resp = await registry.http.request(method, url, json=body, headers=auth)
        assert resp.status == status, (method, url, await resp.text())
    assert await stored(pool, alice.id) == before
    assert [r["actor"] for r in await stored(pool, bob.id)] == ["system"] * 3  # its first keys


async def test_a_410_order_on_the_commands_topic_is_audited_as_the_platforms(
    registry, pool, producer, topics, kafka_settings
):
    alice = registry.alice
    seeded = await seed_account(registry, pool, alice)
    order = DisableWebhook(
        webhook_id=seeded.webhook["id"],
        organization_id=alice.id,
        reason="HTTP 410 Gone",
        requested_at=datetime.now(UTC),
    )
    async with commands_applied(kafka_settings, registry.app[WEBHOOKS]):
        await producer.send_and_wait(
            topics.registry_commands,
            order.model_dump_json().encode(),
            key=seeded.webhook["id"].encode(),
            headers=JSON_HEADERS,
        )

        async def audited():
            resp = await registry.http.get(audit_url(registry, alice), headers=alice.auth())
            entries = (await resp.json())["data"]["entries"]
            return entries[0] if entries[0]["action"] == "webhook.disabled" else None

        entry = await eventually(audited, timeout_s=20)
    assert (entry["actor"], entry["key_id"], entry["key_label"], entry["role"]) == (
        "system",
        None,
        None,
        None,
    )
    assert entry["target_id"] == seeded.webhook["id"]
    changes = {c["field"]: c["value"] for c in entry["changes"]}
    assert changes == {"enabled": False, "disabled_reason": "HTTP 410 Gone"}
    rows = await stored(pool, alice.id)
    assert [r["action"] for r in rows].count("webhook.disabled") == 1


async def test_the_log_is_for_owner_and_admin_keys_of_its_own_account(registry, pool):
    alice, bob = registry.alice, registry.bob
    await seed_account(registry, pool, alice)
    url = audit_url(registry, alice)
    for auth, status in (
        (alice.auth(Role.OWNER), 200),
        (alice.auth(Role.ADMIN), 200),
        (alice.auth(Role.MEMBER), 403),
        (bob.auth(Role.OWNER), 403),
        ({}, 401),
    ):
        resp = await registry.http.get(url, headers=auth)
        assert resp.status == status, await resp.text()
    resp = await registry.http.get(audit_url(registry, bob), headers=bob.auth())
    entries = (await resp.json())["data"]["entries"]
    assert {(e["account_id"], e["action"], e["actor"]) for e in entries} == {
        (bob.id, "api_key.created", "system")  # its first keys only: nothing of alice's
    }


async def test_pages_newest_first_and_since_bounds_them(registry, pool):
    alice = registry.alice
    await seed_account(registry, pool, alice)
    url = audit_url(registry, alice)
    resp = await registry.http.get(url, params={"limit": "3"}, headers=alice.auth())
    first = (await resp.json())["data"]
    assert len(first["entries"]) == 3 and first["next_cursor"]
    params = {"limit": "3", "cursor": first["next_cursor"]}
    rest = (await (await registry.http.get(url, params=params, headers=alice.auth())).json())[
        "data"
    ]
    entries = first["entries"] + rest["entries"]
    assert [e["action"] for e in entries] == [
        "api_key.created",
        "webhook.recovery_requested",
        "workflow.created",
        "webhook.created",
        *["api_key.created"] * 2,
    ]
    assert len({e["id"] for e in entries}) == 6 and rest["next_cursor"]
    since = entries[1]["created_at"]
    resp = await registry.http.get(url, params={"since": since}, headers=alice.auth())
    assert [e["id"] for e in (await resp.json())["data"]["entries"]] == [
        e["id"] for e in entries[:2]
    ]
    resp = await registry.http.get(
        url, params={"since": "2999-01-01T00:00:00+02:00"}, headers=alice.auth()
    )
    assert (await resp.json())["data"]["entries"] == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("since=yesterday", "since"),
        ("since=2026-05-01T10:00:00", "since"),  # no offset
        ("since=2026-02-30T10:00:00Z", "since"),
        ("since=0001-01-01T00:00:00%2B01:00", "since"),
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("cursor=not-a-cursor", "cursor"),
    ],
)
async def test_bad_input_is_a_400_naming_the_field(registry, query, field):
    alice = registry.alice
    resp = await registry.http.get(f"{audit_url(registry, alice)}?{query}", headers=alice.auth())
    body = await resp.json()
    assert resp.status == 400, body
    assert [d["field"] for d in body["error"]["details"]] == [field]


async def test_empty_parameters_count_as_left_out(registry, pool):
    alice = registry.alice
    await seed_account(registry, pool, alice)
    resp = await registry.http.get(
        audit_url(registry, alice) + "?since=&limit=&cursor=", headers=alice.auth()
    )
    assert resp.status == 200
    assert len((await resp.json())["data"]["entries"]) == 7  # 4 writes and 3 keys minted
