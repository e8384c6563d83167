"""`roomhooks workflows ...` against the served registry, its code checked by the real Deno
check, and the executions of an account seeded as the tenancy tests seed it."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from tests.integration.test_cli import run_cli
from tests.integration.test_cli_webhooks import env, failed, fields, stats_parts, succeeded
from tests.integration.test_workflow_stats import ran
from tests.support.tenants import WORKFLOW_CODE, Seeded, seed_account

pytestmark = pytest.mark.integration

__all__ = ["env"]  # the fixture, shared with test_cli_webhooks.py

TS_CODE = (
    "export default async function(event: { id: string }): Promise<object> {\n"
    "  return { id: event.id };\n"
    "}\n"
)


@pytest.fixture
async def seeded(registry, pool: asyncpg.Pool) -> Seeded:
    return await seed_account(registry, pool, registry.alice)


def code_file(tmp_path: Path, text: str, name: str = "flow.js") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


async def api_workflow(registry, workflow_id: str) -> tuple[int, dict]:
    resp = await registry.http.get(
        f"{registry.url}/v1/accounts/{registry.alice.id}/workflows/{workflow_id}",
        headers=registry.alice.auth(),
    )
    return resp.status, await resp.json()


async def test_create_saves_the_code_file_and_shows_the_workflow_with_its_code(
    env: dict[str, str], tmp_path: Path, registry
) -> None:
    argv = ["workflows", "create", "--name", "Log joins", "--events", "participant.joined"]

    out = succeeded(
        await run_cli(
            [*argv, "--code-file", code_file(tmp_path, WORKFLOW_CODE)], env=env, cwd=tmp_path
        )
    )

    record, code = out.split("\n\ncode\n")
    shown = fields(record)
    assert (shown["name"], shown["language"], shown["version"]) == ("Log joins", "js", "1")
    assert code.rstrip("\n") == WORKFLOW_CODE
    status, body = await api_workflow(registry, shown["id"])
    assert status == 200 and body["data"]["workflow"]["code"] == WORKFLOW_CODE


async def test_a_typescript_file_is_saved_as_ts_and_json_is_the_apis_data(
    env: dict[str, str], tmp_path: Path, registry
) -> None:
    path = code_file(tmp_path, TS_CODE, "flow.ts")
    argv = ["workflows", "create", "--name", "ts", "--events", "session.started", "--json"]

    made = json.loads(succeeded(await run_cli([*argv, "--code-file", path], env=env, cwd=tmp_path)))

    _, body = await api_workflow(registry, made["workflow"]["id"])
    assert made == body["data"]
    assert made["workflow"]["language"] == "ts"


async def test_code_the_check_refuses_exits_1_naming_where(
    env: dict[str, str], tmp_path: Path
) -> None:
    path = code_file(tmp_path, "export default async function( {\n")
    argv = ["workflows", "create", "--name", "bad", "--events", "participant.joined"]

    line = failed(await run_cli([*argv, "--code-file", path], env=env, cwd=tmp_path), 1)

    assert "400 validation_error: code: " in line
    assert "line 1" in line


async def test_update_with_a_new_code_file_makes_a_new_version(
    env: dict[str, str], tmp_path: Path, seeded: Seeded, registry
) -> None:
    flow = seeded.workflow["id"]
    path = code_file(tmp_path, WORKFLOW_CODE.replace("seen ", "saw "))

    out = succeeded(
        await run_cli(
            ["workflows", "update", flow, "--code-file", path, "--disable"], env=env, cwd=tmp_path
        )
    )

    shown = fields(out.split("\n\ncode\n")[0])
    assert (shown["version"], shown["enabled"]) == ("2", "no")
    _, body = await api_workflow(registry, flow)
    assert "saw " in body["data"]["workflow"]["code"]
    assert body["data"]["workflow"]["name"] == seeded.workflow["name"]


async def test_list_get_and_delete(
    env: dict[str, str], tmp_path: Path, seeded: Seeded, registry
) -> None:
    flow = seeded.workflow["id"]

    listed = succeeded(await run_cli(["workflows", "list"], env=env, cwd=tmp_path))
    got = succeeded(await run_cli(["workflows", "get", flow], env=env, cwd=tmp_path))
    deleted = succeeded(await run_cli(["workflows", "delete", flow], env=env, cwd=tmp_path))
    gone = await run_cli(["workflows", "get", flow], env=env, cwd=tmp_path)

    header, *rows = listed.splitlines()
    assert header.split()[:3] == ["ID", "NAME", "EVENTS"]
    assert [row.split()[0] for row in rows] == [flow]
    assert fields(got.split("\n\ncode\n")[0])["name"] == seeded.workflow["name"]
    assert deleted.startswith("deleted\n")
    assert (await api_workflow(registry, flow))[0] == 404
    assert failed(gone, 1).endswith("404 not_found: no such resource in this account")


async def test_executions_lists_the_runs_and_shows_one_with_its_logs(
    env: dict[str, str], tmp_path: Path, seeded: Seeded
) -> None:
    flow = seeded.workflow["id"]

    listed = succeeded(await run_cli(["workflows", "executions", flow], env=env, cwd=tmp_path))
    errors = succeeded(
        await run_cli(["workflows", "executions", flow, "--status", "error"], env=env, cwd=tmp_path)
    )
    one = succeeded(
        await run_cli(["workflows", "executions", flow, seeded.execution_id], env=env, cwd=tmp_path)
    )

    assert [row.split()[:3] for row in listed.splitlines()[1:]] == [
        [seeded.execution_id, "participant.joined", "success"]
    ]
    assert errors.splitlines()[1:] == []
    record, logs = one.split("\n\nlogs\n")
    assert fields(record)["status"] == "success"
    assert logs.splitlines() == [f"log: seen {seeded.marker}"]


async def owner_key_id(registry) -> str:
    """The id of alice's OWNER key, as /v1/me tells it."""
    resp = await registry.http.get(f"{registry.url}/v1/me", headers=registry.alice.auth())
    return (await resp.json())["data"]["key_id"]


async def test_versions_lists_who_saved_each_and_shows_one_with_its_code(
    env: dict[str, str], tmp_path: Path, seeded: Seeded, registry
) -> None:
    flow = seeded.workflow["id"]
    path = code_file(tmp_path, TS_CODE, "flow.ts")
    assert (await run_cli(["workflows", "update", flow, "--code-file", path], env=env,
                          cwd=tmp_path)).code == 0  # fmt: skip

    listed = succeeded(await run_cli(["workflows", "versions", flow], env=env, cwd=tmp_path))
    first = succeeded(await run_cli(["workflows", "versions", flow, "1"], env=env, cwd=tmp_path))

    header, *rows = listed.splitlines()
    assert header.split()[:5] == ["VERSION", "LANGUAGE", "CURRENT", "SAVED", "SAVED"]
    saver = f"key {await owner_key_id(registry)} (OWNER)"
    assert [row.split(None, 4)[:3] for row in rows] == [["2", "ts", "yes"], ["1", "js", "no"]]
    assert all(row.split(None, 4)[4] == saver for row in rows)
    record, code = first.split("\n\ncode\n")
    shown = fields(record)
    assert (shown["version"], shown["current"], shown["saved_by"]) == ("1", "no", saver)
    assert code.rstrip("\n") == WORKFLOW_CODE


async def test_versions_page_with_limit_and_cursor_and_json_is_the_apis_data(
    env: dict[str, str], tmp_path: Path, seeded: Seeded, registry
) -> None:
    flow = seeded.workflow["id"]
    path = code_file(tmp_path, WORKFLOW_CODE.replace("seen ", "saw "))
    assert (await run_cli(["workflows", "update", flow, "--code-file", path], env=env,
                          cwd=tmp_path)).code == 0  # fmt: skip

    page = succeeded(
        await run_cli(["workflows", "versions", flow, "--limit", "1"], env=env, cwd=tmp_path)
    )
    cursor = page.splitlines()[-1].removeprefix("more: --cursor ")
    rest = succeeded(
        await run_cli(["workflows", "versions", flow, "--cursor", cursor], env=env, cwd=tmp_path)
    )
    one = await run_cli(["workflows", "versions", flow, "2", "--json"], env=env, cwd=tmp_path)

    assert [row.split()[0] for row in page.splitlines()[1:-1]] == ["2"]
    assert [row.split()[0] for row in rest.splitlines()[1:]] == ["1"]
    resp = await registry.http.get(
        f"{registry.url}/v1/accounts/{registry.alice.id}/workflows/{flow}/versions/2",
        headers=registry.alice.auth(),
    )
    assert json.loads(succeeded(one)) == (await resp.json())["data"]


async def test_stats_count_the_windows_executions_per_status_in_busy_buckets(
    env: dict[str, str], tmp_path: Path, registry, pool: asyncpg.Pool
) -> None:
    path = code_file(tmp_path, WORKFLOW_CODE)
    argv = ["workflows", "create", "--name", "n", "--events", "participant.joined", "--json"]
    made = json.loads(succeeded(await run_cli([*argv, "--code-file", path], env=env, cwd=tmp_path)))
    workflow = made["workflow"]
    now = datetime.now(UTC)
    for status, ms in [("success", 20), ("success", 30), ("error", 5), ("running", None)]:
        await ran(pool, workflow, at=now - timedelta(seconds=5), status=status, ms=ms)

    out = succeeded(
        await run_cli(
            ["workflows", "stats", workflow["id"], "--window", "7d"], env=env, cwd=tmp_path
        )
    )
    data = json.loads(
        succeeded(
            await run_cli(["workflows", "stats", workflow["id"], "--json"], env=env, cwd=tmp_path)
        )
    )

    shown, title, buckets = stats_parts(out)
    assert (shown["window"], shown["executions"]) == ("7d", "4")
    assert shown["statuses"] == "running 1, success 2, error 1, timeout 0"
    assert title == "buckets: 1 of 168 with executions (oldest first)"
    assert [row[1:6] for row in buckets] == [["4", "1", "2", "1", "0"]]
    assert data["stats"]["window"] == "24h"
    assert data["stats"]["statuses"] == {"running": 1, "success": 2, "error": 1, "timeout": 0}


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["workflows", "create", "--name", "n", "--events", "participant.joined",
          "--code-file", "{missing}"], "--code-file: "),
        (["workflows", "create", "--name", "n", "--events", "participant.joined",
          "--code-file", "{latin1}"], "--code-file: "),
        (["workflows", "create", "--name", "n", "--events", "participant.joined"],
         "the following arguments are required: --code-file"),
        (["workflows", "update", "{flow}"], "nothing to change"),
        (["workflows", "update", "{flow}", "--language", "py"], "--language: invalid choice"),
        (["workflows", "executions", "{flow}", "{execution}", "--status", "error"],
         "--status, --limit and --cursor page the list"),
        (["workflows", "executions", "run-1"], "WORKFLOW_ID: 'run-1' is not a UUID"),
        (["workflows", "versions", "{flow}", "0"], "VERSION: '0' is not a whole number from 1"),
        (["workflows", "versions", "{flow}", "v1"], "VERSION: 'v1' is not a whole number"),
        (["workflows", "versions", "{flow}", "1" * 10], "VERSION: '1111111111' is not a whole"),
        (["workflows", "versions", "{flow}", "1", "--limit", "5"],
         "--limit and --cursor page the list"),
        (["workflows", "stats", "{flow}", "--window", "1d"], "--window: invalid choice: '1d'"),
    ],
    ids=[
        "missing-file", "not-utf8", "no-code", "no-change", "language", "one-with-status", "id",
        "version-0", "version-text", "version-huge", "version-with-limit", "stats-window",
    ],
)  # fmt: skip
async def test_bad_input_exits_2_with_one_line(
    env: dict[str, str], tmp_path: Path, seeded: Seeded, args: list[str], problem: str
) -> None:
    latin1 = tmp_path / "latin1.js"
    latin1.write_bytes("// café\n".encode("latin-1"))
    values = {
        "{missing}": str(tmp_path / "nothing.js"),
        "{latin1}": str(latin1),
        "{flow}": seeded.workflow["id"],
        "{execution}": seeded.execution_id,
    }

    result = await run_cli([values.get(a, a) for a in args], env=env, cwd=tmp_path)

    assert failed(result, 2).startswith(problem)


async def test_an_unknown_workflow_exits_1(env: dict[str, str], tmp_path: Path) -> None:
    missing = str(uuid.uuid4())

    result = await run_cli(["workflows", "executions", missing], env=env, cwd=tmp_path)

    assert failed(result, 1).endswith("404 not_found: no such resource in this account")


async def test_an_unknown_version_and_another_accounts_workflow_exit_1(
    env: dict[str, str], tmp_path: Path, seeded: Seeded, registry, pool: asyncpg.Pool
) -> None:
    bobs = await seed_account(registry, pool, registry.bob)
    flow = seeded.workflow["id"]

    unknown = await run_cli(["workflows", "versions", flow, "99"], env=env, cwd=tmp_path)
    results = [
        await run_cli(["workflows", *args], env=env, cwd=tmp_path)
        for args in (
            ["versions", bobs.workflow["id"]],
            ["versions", bobs.workflow["id"], "1"],
            ["stats", bobs.workflow["id"]],
        )
    ]

    for result in (unknown, *results):
        assert failed(result, 1).endswith("404 not_found: no such resource in this account")
        assert bobs.marker not in result.stdout + result.stderr
