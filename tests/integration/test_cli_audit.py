"""`roomhooks audit list` against the served registry: the account's changes newest first,
who made them and the fields they changed (hidden values as hidden, header values masked,
a tenant's control characters escaped), paged and filtered; bad input (exit 2) and the API's
refusals, a MEMBER key's included (exit 1)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from services.registry.policy import Role
from tests.integration.test_cli import run_cli
from tests.integration.test_cli_webhooks import api_env, create, env, failed, succeeded

pytestmark = pytest.mark.integration

__all__ = ["env"]  # fixture

HEADER_VALUE = "team-token-3f9a"


def table(out: str) -> list[dict[str, str]]:
    """A list table's rows as {header: cell}, cut where each header starts (headers are
    separated by two spaces or more; cells may hold one)."""
    header, *lines = out.splitlines()
    starts = [(m.start(), m.group()) for m in re.finditer(r"\S+(?: \S+)*", header)]
    ends = [start for start, _ in starts[1:]] + [None]
    return [
        {name: line[start:end].strip() for (start, name), end in zip(starts, ends, strict=True)}
        for line in lines
        if not line.startswith("more: ")
    ]


async def changed_webhook(env: dict[str, str], tmp_path: Path) -> dict:
    """A webhook created with a header, then disabled, then given a new secret."""
    made = await create(env, tmp_path, "--header", f"X-Team: {HEADER_VALUE}")
    for args in (["update", made["id"], "--disable"], ["rotate-secret", made["id"]]):
        assert (await run_cli(["webhooks", *args], env=env, cwd=tmp_path)).code == 0
    return made


async def api_audit(registry, **query: str) -> dict:
    resp = await registry.http.get(
        f"{registry.url}/v1/accounts/{registry.alice.id}/audit-log",
        params=query,
        headers=registry.alice.auth(),
    )
    assert resp.status == 200, await resp.text()
    return (await resp.json())["data"]


async def test_list_shows_the_changes_newest_first_with_hidden_values_as_hidden(
    env: dict[str, str], tmp_path: Path
) -> None:
    made = await changed_webhook(env, tmp_path)

    out = succeeded(await run_cli(["audit", "list"], env=env, cwd=tmp_path))

    rows = table(out)
    assert list(rows[0]) == ["TIME", "ACTOR", "KEY LABEL", "ACTION", "TARGET", "CHANGES"]
    assert [(r["ACTOR"], r["KEY LABEL"], r["ACTION"], r["TARGET"]) for r in rows[:3]] == [
        ("key (OWNER)", "-", action, made["id"])
        for action in ("webhook.secret_rotated", "webhook.updated", "webhook.created")
    ]
    assert rows[0]["CHANGES"] == "secret (hidden), previous_secret_expires_at"
    assert rows[1]["CHANGES"] == "enabled: false"
    assert "headers" in rows[2]["CHANGES"]
    assert [(r["ACTOR"], r["ACTION"]) for r in rows[3:]] == [("system", "api_key.created")] * 3
    json_out = succeeded(await run_cli(["audit", "list", "--json"], env=env, cwd=tmp_path))
    for shown in (out, json_out):
        assert HEADER_VALUE not in shown
        assert made["secret"] not in shown


async def test_json_is_the_apis_data_and_limit_cursor_and_since_page_and_filter(
    env: dict[str, str], tmp_path: Path, registry
) -> None:
    await changed_webhook(env, tmp_path)
    whole = await api_audit(registry)
    updated = whole["entries"][1]

    listed = await run_cli(["audit", "list", "--json"], env=env, cwd=tmp_path)
    first = succeeded(await run_cli(["audit", "list", "--limit", "2"], env=env, cwd=tmp_path))
    cursor = first.splitlines()[-1].removeprefix("more: --cursor ")
    rest = succeeded(await run_cli(["audit", "list", "--cursor", cursor], env=env, cwd=tmp_path))
    since = succeeded(
        await run_cli(["audit", "list", "--since", updated["created_at"]], env=env, cwd=tmp_path)
    )

    assert json.loads(succeeded(listed)) == whole
    times = [entry["created_at"] for entry in whole["entries"]]
    assert [row["TIME"] for row in table(first)] == times[:2]
    assert [row["TIME"] for row in table(rest)] == times[2:]
    assert [row["ACTION"] for row in table(since)] == ["webhook.secret_rotated", "webhook.updated"]


async def test_a_tenants_control_characters_are_shown_escaped(
    env: dict[str, str], tmp_path: Path
) -> None:
    made = await create(env, tmp_path)
    name = "\x1b[2J\x1b]0;owned\x07"
    update = ["webhooks", "update", made["id"], "--name", name]
    assert (await run_cli(update, env=env, cwd=tmp_path)).code == 0

    out = succeeded(await run_cli(["audit", "list", "--limit", "1"], env=env, cwd=tmp_path))

    assert "\x1b" not in out and "\x07" not in out
    assert table(out)[0]["CHANGES"] == 'name: "\\u001b[2J\\u001b]0;owned\\u0007"'


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--since", "yesterday"], "--since: 'yesterday' is not an RFC 3339 time"),
        (["--since", "2026-05-29T10:00:00"], "--since: '2026-05-29T10:00:00' has no UTC offset"),
        (["--limit", "101"], "--limit: 101 is not between 1 and 100"),
        (["--account", "acme"], "--account: 'acme' is not a UUID"),
        (["--until", "2026-05-29T10:00:00Z"], "unrecognized arguments: --until"),
    ],
    ids=["since-text", "since-naive", "limit", "account", "unknown-option"],
)
async def test_bad_input_exits_2_with_one_line(
    cli_env: dict[str, str], tmp_path: Path, registry, args: list[str], problem: str
) -> None:
    # No registry at this URL: a refusal that reached for it would exit 1, not 2.
    nowhere = {**api_env(cli_env, registry), "ROOMHOOKS_API_URL": "http://127.0.0.1:9"}

    result = await run_cli(["audit", "list", *args], env=nowhere, cwd=tmp_path)

    assert failed(result, 2).startswith(problem)


async def test_a_member_key_and_another_account_are_refused_with_exit_1_and_admin_reads(
    cli_env: dict[str, str], env: dict[str, str], tmp_path: Path, registry
) -> None:
    member = await run_cli(
        ["audit", "list"], env=api_env(cli_env, registry, role=Role.MEMBER), cwd=tmp_path
    )
    other = await run_cli(["audit", "list", "--account", registry.bob.id], env=env, cwd=tmp_path)
    admin = await run_cli(
        ["audit", "list"], env=api_env(cli_env, registry, role=Role.ADMIN), cwd=tmp_path
    )

    assert "403 forbidden: " in failed(member, 1)
    assert "403 forbidden: this API key belongs to another account" in failed(other, 1)
    assert succeeded(admin).splitlines()[0].startswith("TIME")
