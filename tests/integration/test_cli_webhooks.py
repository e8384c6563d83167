"""`roomhooks webhooks ...` as a user runs it, against the registry served over real HTTP on a
real Postgres and broker (conftest's `registry`): tables, `--json`, the secret shown once,
refusals of the API (exit 1), bad input (exit 2) and an unreachable registry (exit 1).

The helpers here serve the other `test_cli_*` files of the API commands too.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from services.registry.policy import Role
from tests.integration.test_cli import Result, run_cli
from tests.integration.test_webhook_stats import attempts_made
from tests.support.services import free_port

pytestmark = pytest.mark.integration

HOOK_URL = "https://hooks.example.com/collab"


def api_env(cli_env: dict[str, str], registry, *, role: Role = Role.OWNER) -> dict[str, str]:
    """The CLI's environment for alice's account with a key of `role`."""
    alice = registry.alice
    key = {Role.OWNER: alice.owner, Role.ADMIN: alice.admin, Role.MEMBER: alice.member}[role]
    return {
        **cli_env,
        "ROOMHOOKS_API_URL": registry.url,
        "ROOMHOOKS_API_KEY": key,
        "ROOMHOOKS_ACCOUNT_ID": alice.id,
    }


@pytest.fixture
def env(cli_env: dict[str, str], registry) -> dict[str, str]:
    return api_env(cli_env, registry)


def succeeded(result: Result) -> str:
    """stdout of a command that exited 0 and said nothing on stderr."""
    assert (result.code, result.stderr) == (0, ""), result
    return result.stdout


def failed(result: Result, code: int) -> str:
    """The one stderr line of a command that exited `code` and printed nothing."""
    assert result.code == code, result
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("roomhooks: error: ")
    return lines[0].removeprefix("roomhooks: error: ")


def fields(table: str) -> dict[str, str]:
    """A `get` table (`field  value` lines) as a dict."""
    return dict(line.split(None, 1) if " " in line else (line, "") for line in table.splitlines())


async def api_webhook(registry, webhook_id: str) -> tuple[int, dict]:
    resp = await registry.http.get(
        registry.webhooks_url(registry.alice, webhook_id), headers=registry.alice.auth()
    )
    return resp.status, await resp.json()


async def create(env: dict[str, str], tmp_path: Path, *extra: str) -> dict:
    """A webhook made through the CLI; the API's `data.webhook`, with the secret."""
    args = ["webhooks", "create", "--url", HOOK_URL, "--events", "participant.joined", "--json"]
    result = await run_cli([*args, *extra], env=env, cwd=tmp_path)
    assert result.code == 0, result
    return json.loads(result.stdout)["webhook"]


async def test_create_prints_the_webhook_and_its_secret_once_with_a_warning(
    env: dict[str, str], tmp_path: Path, registry
) -> None:
    result = await run_cli(
        [
            "webhooks", "create", "--url", HOOK_URL,
            "--events", "participant.joined,participant.left",
            "--room", "room-1", "--name", "Design", "--header", "X-Team: design",
        ],
        env=env,
        cwd=tmp_path,
    )  # fmt: skip

    assert result.code == 0, result
    assert result.stderr.splitlines() == [
        "roomhooks: the secret is shown only now: keep it to verify signatures"
    ]
    shown = fields(result.stdout)
    status, body = await api_webhook(registry, shown["id"])
    assert status == 200
    stored = body["data"]["webhook"]
    assert (stored["url"], stored["room_id"], stored["name"]) == (HOOK_URL, "room-1", "Design")
    assert stored["events"] == ["participant.joined", "participant.left"]
    assert stored["headers"] == {"X-Team": "design"}
    assert len(shown["secret"]) == 64

    got = succeeded(await run_cli(["webhooks", "get", shown["id"]], env=env, cwd=tmp_path))
    assert fields(got)["url"] == HOOK_URL
    assert "secret" not in fields(got)
    assert shown["secret"] not in got


async def test_list_shows_the_accounts_webhooks_newest_first_and_json_is_the_apis_data(
    env: dict[str, str], tmp_path: Path, registry
) -> None:
    first = await create(env, tmp_path)
    second = await create(env, tmp_path, "--name", "second")

    table = succeeded(await run_cli(["webhooks", "list"], env=env, cwd=tmp_path))
    header, *rows = table.splitlines()
    assert header.split() == ["ID", "NAME", "URL", "EVENTS", "ROOM", "ENABLED"]
    assert [row.split()[0] for row in rows] == [second["id"], first["id"]]
    assert rows[0].split()[1:3] == ["second", HOOK_URL]

    out = succeeded(await run_cli(["webhooks", "list", "--json"], env=env, cwd=tmp_path))
    resp = await registry.http.get(
        registry.webhooks_url(registry.alice), headers=registry.alice.auth()
    )
    assert json.loads(out) == (await resp.json())["data"]

    paged = succeeded(await run_cli(["webhooks", "list", "--limit", "1"], env=env, cwd=tmp_path))
    assert paged.splitlines()[1].split()[0] == second["id"]
    cursor = paged.splitlines()[-1].removeprefix("more: --cursor ")
    rest = succeeded(await run_cli(["webhooks", "list", "--cursor", cursor], env=env, cwd=tmp_path))
    assert [row.split()[0] for row in rest.splitlines()[1:]] == [first["id"]]


async def test_update_changes_only_the_fields_given(
    env: dict[str, str], tmp_path: Path, registry
) -> None:
    made = await create(env, tmp_path, "--room", "room-1", "--name", "kept")

    result = await run_cli(
        ["webhooks", "update", made["id"], "--disable", "--no-room", "--events", "session.started"],
        env=env,
        cwd=tmp_path,
    )

    shown = fields(succeeded(result))
    assert (shown["enabled"], shown["room_id"], shown["name"]) == ("no", "-", "kept")
    _, body = await api_webhook(registry, made["id"])
    stored = body["data"]["webhook"]
    assert (stored["enabled"], stored["room_id"], stored["events"]) == (
        False,
        None,
        ["session.started"],
    )
    assert stored["url"] == HOOK_URL


async def test_ordering_is_set_on_create_and_changed_by_update(
    env: dict[str, str], tmp_path: Path, registry
) -> None:
    made = await create(env, tmp_path, "--ordering", "room")
    assert made["ordering"] == "room"

    result = await run_cli(
        ["webhooks", "update", made["id"], "--ordering", "none"], env=env, cwd=tmp_path
    )

    assert fields(succeeded(result))["ordering"] == "none"
    _, body = await api_webhook(registry, made["id"])
    assert body["data"]["webhook"]["ordering"] == "none"


async def test_send_traceparent_is_set_on_create_shown_by_get_and_unset_by_update(
    env: dict[str, str], tmp_path: Path, registry
) -> None:
    assert (await create(env, tmp_path))["send_traceparent"] is False
    made = await create(env, tmp_path, "--send-traceparent")
    assert made["send_traceparent"] is True
    got = succeeded(await run_cli(["webhooks", "get", made["id"]], env=env, cwd=tmp_path))
    assert fields(got)["send_traceparent"] == "yes"

    renamed = await run_cli(
        ["webhooks", "update", made["id"], "--name", "kept on"], env=env, cwd=tmp_path
    )
    assert fields(succeeded(renamed))["send_traceparent"] == "yes"
    result = await run_cli(
        ["webhooks", "update", made["id"], "--no-send-traceparent"], env=env, cwd=tmp_path
    )

    assert fields(succeeded(result))["send_traceparent"] == "no"
    _, body = await api_webhook(registry, made["id"])
    assert body["data"]["webhook"]["send_traceparent"] is False


async def test_delete_prints_the_last_state_and_the_webhook_is_gone(
    env: dict[str, str], tmp_path: Path, registry
) -> None:
    made = await create(env, tmp_path)

    out = succeeded(await run_cli(["webhooks", "delete", made["id"]], env=env, cwd=tmp_path))

    assert out.startswith("deleted\n")
    assert (await api_webhook(registry, made["id"]))[0] == 404
    again = await run_cli(["webhooks", "get", made["id"]], env=env, cwd=tmp_path)
    assert failed(again, 1) == (
        f"GET /v1/accounts/{registry.alice.id}/webhooks/{made['id']}:"
        " 404 not_found: no such resource in this account"
    )


async def test_test_queues_a_ping_and_prints_its_delivery(
    env: dict[str, str], tmp_path: Path
) -> None:
    made = await create(env, tmp_path)

    out = succeeded(await run_cli(["webhooks", "test", made["id"]], env=env, cwd=tmp_path))
    data = json.loads(
        succeeded(await run_cli(["webhooks", "test", made["id"], "--json"], env=env, cwd=tmp_path))
    )

    word, delivery_id, state = out.split()
    assert (word, state) == ("delivery", "queued")
    uuid.UUID(delivery_id)
    uuid.UUID(data["delivery_id"])


async def test_rotate_secret_prints_the_new_secret_once_with_its_overlap(
    env: dict[str, str], tmp_path: Path, registry
) -> None:
    made = await create(env, tmp_path)

    result = await run_cli(
        ["webhooks", "rotate-secret", made["id"], "--overlap", "3600", "--json"],
        env=env,
        cwd=tmp_path,
    )

    assert result.code == 0, result
    assert "shown only now" in result.stderr
    rotated = json.loads(result.stdout)["webhook"]
    assert rotated["secret"] != made["secret"] and len(rotated["secret"]) == 64
    assert rotated["previous_secret_expires_at"] is not None
    _, body = await api_webhook(registry, made["id"])
    assert "secret" not in body["data"]["webhook"]


def stats_parts(out: str) -> tuple[dict[str, str], list[str], list[list[str]]]:
    """`webhooks stats`/`workflows stats` output: the figures, the buckets' title line and
    their rows (split on whitespace)."""
    figures, buckets = out.rstrip("\n").split("\n\n")
    title, *table = buckets.splitlines()
    return fields(figures), title, [row.split() for row in table[1:]]


async def test_stats_show_the_windows_figures_and_only_its_busy_buckets(
    env: dict[str, str], tmp_path: Path, registry, pool
) -> None:
    made = await create(env, tmp_path)
    outcomes = [("success", 12, None)] * 3 + [("pending", 2500, "HTTP 503 \x1b[2J")]
    await attempts_made(pool, made["id"], registry.alice.id, outcomes)

    out = succeeded(
        await run_cli(["webhooks", "stats", made["id"], "--window", "1h"], env=env, cwd=tmp_path)
    )

    shown, title, buckets = stats_parts(out)
    assert (shown["window"], shown["attempts"], shown["successes"], shown["failures"]) == (
        "1h", "4", "3", "1",
    )  # fmt: skip
    assert shown["success_rate"] == "75.0%"
    assert shown["deliveries"] == "success 3, failed 0, pending 1"
    assert shown["latency_ms"].startswith("p50 ")
    assert shown["failure_streak"] == "1"
    assert shown["last_error"] == "HTTP 503 \\x1b[2J"  # escaped, never sent to the terminal
    assert "\x1b" not in out
    assert title.startswith(f"buckets: {len(buckets)} of 60 with attempts")
    assert sum(int(row[1]) for row in buckets) == 4


async def test_stats_of_a_quiet_webhook_default_to_a_day_and_json_is_the_apis_data(
    env: dict[str, str], tmp_path: Path, registry
) -> None:
    made = await create(env, tmp_path)

    out = succeeded(await run_cli(["webhooks", "stats", made["id"]], env=env, cwd=tmp_path))
    data = json.loads(
        succeeded(await run_cli(["webhooks", "stats", made["id"], "--json"], env=env, cwd=tmp_path))
    )

    shown, title, buckets = stats_parts(out)
    assert (shown["window"], shown["attempts"], shown["success_rate"]) == ("24h", "0", "-")
    assert shown["latency_ms"] == "p50 -, p95 -, p99 -"
    assert (title, buckets) == ("buckets: 0 of 24 with attempts (oldest first)", [])
    resp = await registry.http.get(
        registry.webhooks_url(registry.alice, made["id"]) + "/stats",
        headers=registry.alice.auth(),
    )
    expected = (await resp.json())["data"]
    # `since` moves with the clock: the figures are what must agree.
    assert {**data["stats"], "since": None} == {**expected["stats"], "since": None}


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["webhooks", "get", "nope"], "WEBHOOK_ID: 'nope' is not a UUID"),
        (["webhooks", "create", "--url", HOOK_URL, "--events", "x.y"], "--events: unknown event"),
        (["webhooks", "create", "--events", "participant.joined"], "the following arguments"),
        (["webhooks", "update", "{id}"], "nothing to change"),
        (["webhooks", "update", "{id}", "--enable", "--disable"], "--disable: not allowed"),
        (["webhooks", "update", "{id}", "--ordering", "fifo"], "--ordering: invalid choice"),
        (
            ["webhooks", "update", "{id}", "--send-traceparent=yes"],
            "--send-traceparent/--no-send-traceparent: ignored explicit argument 'yes'",
        ),
        (["webhooks", "rotate-secret", "{id}", "--overlap", "soon"], "--overlap: invalid int"),
        (["webhooks", "list", "--limit", "0"], "--limit: 0 is not between 1 and 100"),
        (["webhooks", "list", "--account", "acme"], "--account: 'acme' is not a UUID"),
        (["webhooks", "explode"], "ACTION: invalid choice"),
        (["webhooks", "stats", "{id}", "--window", "30d"], "--window: invalid choice: '30d'"),
        (["webhooks", "stats", "nope"], "WEBHOOK_ID: 'nope' is not a UUID"),
    ],
    ids=[
        "id", "event", "no-url", "no-change", "enable-and-disable", "ordering", "traceparent",
        "overlap", "limit", "account", "action", "stats-window", "stats-id",
    ],
)  # fmt: skip
async def test_bad_input_exits_2_with_one_line_and_changes_nothing(
    env: dict[str, str], tmp_path: Path, registry, args: list[str], problem: str
) -> None:
    made = await create(env, tmp_path)

    result = await run_cli([a.replace("{id}", made["id"]) for a in args], env=env, cwd=tmp_path)

    assert failed(result, 2).startswith(problem)
    _, body = await api_webhook(registry, made["id"])
    assert body["data"]["webhook"]["updated_at"] == made["updated_at"]


async def test_the_apis_refusals_exit_1_with_its_description_on_one_line(
    cli_env: dict[str, str], env: dict[str, str], tmp_path: Path, registry
) -> None:
    invalid = await run_cli(
        ["webhooks", "create", "--url", "ftp://example.com", "--events", "participant.joined"],
        env=env,
        cwd=tmp_path,
    )
    member = await run_cli(
        ["webhooks", "create", "--url", HOOK_URL, "--events", "participant.joined"],
        env=api_env(cli_env, registry, role=Role.MEMBER),
        cwd=tmp_path,
    )
    wrong_key = await run_cli(
        ["webhooks", "list"], env={**env, "ROOMHOOKS_API_KEY": "rh_not_a_key"}, cwd=tmp_path
    )
    other = await run_cli(["webhooks", "list", "--account", registry.bob.id], env=env, cwd=tmp_path)
    bobs = await create({**env, "ROOMHOOKS_API_KEY": registry.bob.owner,
                         "ROOMHOOKS_ACCOUNT_ID": registry.bob.id}, tmp_path)  # fmt: skip
    foreign_stats = await run_cli(["webhooks", "stats", bobs["id"]], env=env, cwd=tmp_path)

    assert "400 validation_error: url: " in failed(invalid, 1)
    assert failed(foreign_stats, 1).endswith("404 not_found: no such resource in this account")
    assert "403 forbidden: " in failed(member, 1)
    assert "401 unauthorized: the API key is not valid" in failed(wrong_key, 1)
    assert "403 forbidden: this API key belongs to another account" in failed(other, 1)
    for result in (invalid, member, wrong_key, other):
        for key in (registry.alice.owner, registry.alice.member, "rh_not_a_key"):
            assert key not in result.stdout + result.stderr


async def test_an_unreachable_registry_exits_1_naming_its_url(
    env: dict[str, str], tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{free_port()}"

    elsewhere = {**env, "ROOMHOOKS_API_URL": url}
    result = await run_cli(["webhooks", "list"], env=elsewhere, cwd=tmp_path)

    assert failed(result, 1).startswith(f"cannot reach the registry at {url} (")


async def test_url_key_and_account_come_from_run_env_and_the_account_else_from_the_key(
    cli_env: dict[str, str], tmp_path: Path, registry
) -> None:
    bare = {k: v for k, v in cli_env.items() if not k.startswith("ROOMHOOKS_")}
    (tmp_path / ".roomhooks").mkdir()
    run_env = tmp_path / ".roomhooks" / "run.env"
    run_env.write_text(
        f"export ROOMHOOKS_API_URL='{registry.url}'\n"
        f"export ROOMHOOKS_ACCOUNT_ID='{registry.alice.id}'\n"
        f"export ROOMHOOKS_OWNER_TOKEN='{registry.alice.owner}'\n"
    )
    made = await create(bare, tmp_path)
    assert made["organization_id"] == registry.alice.id

    run_env.write_text(
        f"export ROOMHOOKS_API_URL='{registry.url}'\n"
        f"export ROOMHOOKS_OWNER_TOKEN='{registry.alice.owner}'\n"
    )
    listed = succeeded(await run_cli(["webhooks", "list"], env=bare, cwd=tmp_path))
    assert made["id"] in listed

    run_env.write_text(f"export ROOMHOOKS_API_URL='{registry.url}'\n")
    missing = await run_cli(["webhooks", "list"], env=bare, cwd=tmp_path)
    assert failed(missing, 2).startswith("no API key: set ROOMHOOKS_API_KEY")
