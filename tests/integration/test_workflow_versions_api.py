"""GET .../workflows/{id}/versions and .../versions/{version} on the real registry and Postgres:
newest first in pages without code, one with its code, who saved each from the audit log (null
once its entry is gone), another account's workflow a 404, a bad version or cursor a 400 naming
it."""

from __future__ import annotations

import uuid

import pytest

from services.registry.policy import Role
from tests.integration.test_workflows_api import LOG_NEW_PARTICIPANTS, create, workflows_url

pytestmark = pytest.mark.integration


def code_of(n: int) -> str:
    return LOG_NEW_PARTICIPANTS.replace("logged: true", f"logged: {n}")


async def workflow_with_versions(registry, count: int) -> str:
    """A workflow of alice's saved `count` times: version 1 by her OWNER key, then by ADMIN."""
    _, body = await create(registry)
    workflow_id = body["data"]["workflow"]["id"]
    url = workflows_url(registry, registry.alice, workflow_id)
    for n in range(2, count + 1):
        resp = await registry.http.patch(
            url, json={"code": code_of(n)}, headers=registry.alice.auth(Role.ADMIN)
        )
        assert resp.status == 200, await resp.text()
    return workflow_id


async def get(registry, url: str, account=None, role=Role.MEMBER, **params):
    account = account or registry.alice
    resp = await registry.http.get(url, params=params, headers=account.auth(role))
    return resp.status, await resp.json()


async def test_versions_are_listed_newest_first_in_pages_without_their_code(registry):
    workflow_id = await workflow_with_versions(registry, 5)
    url = workflows_url(registry, registry.alice, workflow_id) + "/versions"

    status, body = await get(registry, url, limit="2")
    assert status == 200, body
    first = body["data"]
    assert [v["version"] for v in first["versions"]] == [5, 4]
    assert [v["current"] for v in first["versions"]] == [True, False]
    assert all("code" not in v for v in first["versions"])
    fields = {"workflow_id", "version", "language", "current", "created_at", "saved_by"}
    assert set(first["versions"][0]) == fields
    assert {v["workflow_id"] for v in first["versions"]} == {workflow_id}

    seen = [v["version"] for v in first["versions"]]
    cursor = first["next_cursor"]
    while cursor:
        status, body = await get(registry, url, limit="2", cursor=cursor)
        assert status == 200, body
        seen += [v["version"] for v in body["data"]["versions"]]
        cursor = body["data"]["next_cursor"]
    assert seen == [5, 4, 3, 2, 1]


async def test_each_version_says_which_key_saved_it(registry):
    workflow_id = await workflow_with_versions(registry, 2)
    url = workflows_url(registry, registry.alice, workflow_id) + "/versions"
    _, body = await get(registry, url)
    saved = {v["version"]: v["saved_by"] for v in body["data"]["versions"]}
    assert saved[1]["actor"] == "key" and saved[1]["role"] == "OWNER"
    assert saved[2]["actor"] == "key" and saved[2]["role"] == "ADMIN"
    assert saved[1]["key_id"] != saved[2]["key_id"]


async def test_a_version_whose_audit_entry_is_gone_has_no_saver(registry, pool):
    workflow_id = await workflow_with_versions(registry, 2)
    await pool.execute(
        "DELETE FROM registry.audit_log WHERE target_id = $1 AND action = 'workflow.created'",
        workflow_id,
    )
    url = workflows_url(registry, registry.alice, workflow_id) + "/versions"
    _, body = await get(registry, url)
    saved = {v["version"]: v["saved_by"] for v in body["data"]["versions"]}
    assert saved[1] is None and saved[2]["role"] == "ADMIN"


async def test_one_version_comes_with_its_code(registry):
    workflow_id = await workflow_with_versions(registry, 3)
    base = workflows_url(registry, registry.alice, workflow_id) + "/versions"
    status, body = await get(registry, base + "/2")
    assert status == 200, body
    version = body["data"]["version"]
    assert (version["version"], version["current"], version["language"]) == (2, False, "js")
    assert version["workflow_id"] == workflow_id
    assert version["code"] == code_of(2)
    _, body = await get(registry, base + "/1")
    assert body["data"]["version"]["code"] == LOG_NEW_PARTICIPANTS
    status, _ = await get(registry, base + "/4")
    assert status == 404


async def test_another_accounts_workflow_and_its_versions_are_404s(registry):
    workflow_id = await workflow_with_versions(registry, 2)
    theirs = workflows_url(registry, registry.bob, workflow_id) + "/versions"
    for url in (theirs, theirs + "/1"):
        status, body = await get(registry, url, account=registry.bob, role=Role.OWNER)
        assert status == 404, body
    missing = workflows_url(registry, registry.alice, str(uuid.uuid4())) + "/versions"
    for url in (missing, missing + "/1"):
        status, _ = await get(registry, url)
        assert status == 404


@pytest.mark.parametrize(
    "version", ["0", "-1", "abc", "1.5", "٣", "1e3", "9999999999", "0x10", "%20"]
)
async def test_a_version_that_is_no_whole_number_from_1_is_a_400_naming_it(registry, version):
    workflow_id = await workflow_with_versions(registry, 1)
    url = workflows_url(registry, registry.alice, workflow_id) + f"/versions/{version}"
    status, body = await get(registry, url)
    assert status == 400, body
    assert body["error"]["details"][0]["field"] == "version"


@pytest.mark.parametrize("query", [{"limit": "0"}, {"limit": "x"}, {"cursor": "nope"}])
async def test_bad_page_parameters_are_400s_naming_them(registry, query):
    workflow_id = await workflow_with_versions(registry, 1)
    url = workflows_url(registry, registry.alice, workflow_id) + "/versions"
    status, body = await get(registry, url, **query)
    assert status == 400, body
    assert body["error"]["details"][0]["field"] == next(iter(query))
