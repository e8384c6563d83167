"""Saving a workflow (create and update, JS and TS) refuses what the sandbox would refuse at run
time: a 400 naming the code's line and column and what to do instead, before anything is
stored."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

GOOD = "export default async (event) => ({ ok: true });"
READS_A_FILE = (
    'import { readFileSync } from "node:fs";\n'
    "export default async () => readFileSync('/config.json', 'utf8');"
)
READS_THE_ENV = "export default async (event: unknown) => {\n  return Deno.env.get('TOKEN');\n};"


def workflows_url(registry, workflow_id: str | None = None) -> str:
    base = f"{registry.url}/v1/accounts/{registry.alice.id}/workflows"
    return f"{base}/{workflow_id}" if workflow_id else base


def body(code: str, language: str) -> dict:
    return {"name": "w", "events": ["participant.joined"], "code": code, "language": language}


def assert_refused(answer: dict, where: str, says: str) -> None:
    [detail] = answer["error"]["details"]
    assert detail["field"] == "code"
    assert detail["message"].startswith(where), detail
    assert says in detail["message"]
    assert "--allow" not in detail["message"]


@pytest.mark.parametrize(
    ("code", "language", "where", "says"),
    [
        (READS_A_FILE, "js", "line 1, column 30: ", "node:fs is not available"),
        (READS_THE_ENV, "ts", "line 2, column 10: ", "Deno.env is not available"),
    ],
)
async def test_create_refuses_what_the_sandbox_would_with_the_place_and_the_way_out(
    registry, code: str, language: str, where: str, says: str
):
    auth = registry.alice.auth()
    url = workflows_url(registry)
    resp = await registry.http.post(url, json=body(code, language), headers=auth)
    assert resp.status == 400
    assert_refused(await resp.json(), where, says)
    listed = await (await registry.http.get(workflows_url(registry), headers=auth)).json()
    assert listed["data"]["workflows"] == []


@pytest.mark.parametrize(
    ("change", "where", "says"),
    [
        ({"code": READS_A_FILE}, "line 1, column 30: ", "node:fs is not available"),
        ({"code": READS_THE_ENV, "language": "ts"}, "line 2, column 10: ", "Deno.env"),
    ],
)
async def test_update_refuses_it_too_and_keeps_the_version(registry, change, where, says):
    auth = registry.alice.auth()
    resp = await registry.http.post(workflows_url(registry), json=body(GOOD, "js"), headers=auth)
    assert resp.status == 201, await resp.text()
    url = workflows_url(registry, (await resp.json())["data"]["workflow"]["id"])
    resp = await registry.http.patch(url, json=change, headers=auth)
    assert resp.status == 400
    assert_refused(await resp.json(), where, says)
    kept = (await (await registry.http.get(url, headers=auth)).json())["data"]["workflow"]
    assert (kept["version"], kept["code"]) == (1, GOOD)
