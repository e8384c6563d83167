"""Workflow routes: CRUD with code checked on save, versions, the outbox, tenancy."""

from __future__ import annotations

import pytest

from services.registry.policy import Role
from shared.messages import WorkflowRecord
from tests.support.kafka import read_topic

pytestmark = pytest.mark.integration

LOG_NEW_PARTICIPANTS = (
    "export default async function(event, { room }) {\n"
    "  const roomData = await room.get();\n"
    "  console.log(`[${event.event}] User ${event.data.userId} in room ${roomData.name}`);\n"
    "  return { logged: true };\n"
    "}"
)
BODY = {
    "name": "Log new participants",
    "events": ["participant.joined", "participant.left"],
    "code": LOG_NEW_PARTICIPANTS,
}


def workflows_url(registry, account, workflow_id: str | None = None) -> str:
    base = f"{registry.url}/v1/accounts/{account.id}/workflows"
    return f"{base}/{workflow_id}" if workflow_id else base


async def create(registry, body=None, role=Role.OWNER, account=None):
    account = account or registry.alice
    resp = await registry.http.post(
        workflows_url(registry, account), json=body or BODY, headers=account.auth(role)
    )
    return resp.status, await resp.json()


async def test_create_as_in_001_then_read_change_and_delete(registry):
    r, alice = registry, registry.alice
    status, body = await create(r)
    assert status == 201 and body["description"] == "Workflow created"
    workflow = body["data"]["workflow"]
    assert workflow["version"] == 1 and workflow["language"] == "js"
    assert workflow["code"] == LOG_NEW_PARTICIPANTS and workflow["enabled"] is True
    url = workflows_url(r, alice, workflow["id"])

    got = await (await r.http.get(url, headers=alice.auth(Role.MEMBER))).json()
    assert got["data"]["workflow"] == workflow
    listed = await (await r.http.get(workflows_url(r, alice), headers=alice.auth())).json()
    assert [w["id"] for w in listed["data"]["workflows"]] == [workflow["id"]]

    resp = await r.http.patch(url, json={"enabled": False}, headers=alice.auth())
    patched = (await resp.json())["data"]["workflow"]
    assert patched["enabled"] is False and patched["version"] == 1  # no new code: same version

    new_code = LOG_NEW_PARTICIPANTS.replace("logged: true", "logged: 2")
    resp = await r.http.patch(url, json={"code": new_code}, headers=alice.auth(Role.ADMIN))
    assert (await resp.json())["data"]["workflow"]["version"] == 2
    resp = await r.http.patch(url, json={"language": "ts"}, headers=alice.auth())
    assert (await resp.json())["data"]["workflow"]["version"] == 3

    resp = await r.http.delete(url, headers=alice.auth())
    assert resp.status == 200
    assert (await r.http.get(url, headers=alice.auth())).status == 404


async def test_a_syntax_error_is_a_400_naming_line_and_column(registry):
    code = "export default async function(event) {\n  const x = ;\n}"
    status, body = await create(registry, {**BODY, "code": code})
    assert status == 400
    [detail] = body["error"]["details"]
    assert detail["field"] == "code"
    assert detail["message"].startswith("line 2, column 13:")


async def test_a_module_without_a_default_function_is_a_400(registry):
    status, body = await create(registry, {**BODY, "code": "export const x = 1;"})
    assert status == 400
    assert "default function" in body["error"]["details"][0]["message"]


async def test_typescript_is_accepted(registry):
    code = "export default async function(e: { event: string }): Promise<{ ok: boolean }> {\n"
    code += "  return { ok: e.event.length > 0 };\n}"
    status, body = await create(registry, {**BODY, "code": code, "language": "ts"})
    assert status == 201 and body["data"]["workflow"]["language"] == "ts"


async def test_bad_new_code_in_a_patch_changes_nothing(registry):
    _, body = await create(registry)
    url = workflows_url(registry, registry.alice, body["data"]["workflow"]["id"])
    resp = await registry.http.patch(
        url, json={"code": "export default ("}, headers=registry.alice.auth()
    )
    assert resp.status == 400
    got = await (await registry.http.get(url, headers=registry.alice.auth())).json()
    assert got["data"]["workflow"]["version"] == 1
    assert got["data"]["workflow"]["code"] == LOG_NEW_PARTICIPANTS


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**BODY, "events": []}, "events"),
        ({**BODY, "events": ["nope.nope"]}, "events"),
        ({**BODY, "language": "python"}, "language"),
        ({k: v for k, v in BODY.items() if k != "name"}, "name"),
        ({**BODY, "code": ""}, "code"),
        ({**BODY, "roomId": "r1", "events": ["member.added"]}, "body"),
    ],
)
async def test_bad_workflow_bodies_are_400s_naming_the_field(registry, body, field):
    status, answer = await create(registry, body)
    assert status == 400
    assert field in {d["field"] for d in answer["error"]["details"]}


async def test_roles_and_tenancy_as_for_webhooks(registry):
    r, alice, bob = registry, registry.alice, registry.bob
    status, _ = await create(r, role=Role.MEMBER)
    assert status == 403
    _, body = await create(r)
    url = workflows_url(r, alice, body["data"]["workflow"]["id"])
    for role in Role:
        assert (await r.http.get(url, headers=bob.auth(role))).status == 403
        bob_url = workflows_url(r, bob, body["data"]["workflow"]["id"])
        assert (await r.http.get(bob_url, headers=bob.auth(role))).status == 404
    assert (await r.http.get(url)).status == 401
    member = alice.auth(Role.MEMBER)
    assert (await r.http.patch(url, json={"enabled": False}, headers=member)).status == 403
    assert (await r.http.delete(url, headers=member)).status == 403
    assert (await r.http.get(url + "/executions", headers=member)).status == 200


async def test_changes_reach_the_registry_topic_without_the_code(registry, kafka_settings, topics):
    r, alice = registry, registry.alice
    _, body = await create(r)
    workflow = body["data"]["workflow"]
    url = workflows_url(r, alice, workflow["id"])
    await r.http.patch(url, json={"code": LOG_NEW_PARTICIPANTS + "\n"}, headers=alice.auth())
    await r.http.delete(url, headers=alice.auth())
    while await r.relay.publish_pending():
        pass
    records = await read_topic(kafka_settings, topics.registry, at_least=3)
    assert {rec.key for rec in records} == {f"workflow:{workflow['id']}".encode()}
    first, second, tombstone = records
    assert tombstone.value is None
    versions = [WorkflowRecord.model_validate_json(rec.value).version for rec in (first, second)]
    assert versions == [1, 2]
    assert b"console.log" not in first.value and b"code" not in first.value


async def test_the_execution_log_is_empty_at_first_and_validates_its_filters(registry):
    _, body = await create(registry)
    url = workflows_url(registry, registry.alice, body["data"]["workflow"]["id"])
    auth = registry.alice.auth()
    listed = await (await registry.http.get(url + "/executions", headers=auth)).json()
    assert listed["data"] == {"executions": [], "next_cursor": None}
    bad = await registry.http.get(url + "/executions", params={"status": "done"}, headers=auth)
    assert bad.status == 400
    missing = await registry.http.get(
        url + "/executions/6f1c2f7e-2a55-4c3e-9f57-1b0c6a8e1d11", headers=auth
    )
    assert missing.status == 404
