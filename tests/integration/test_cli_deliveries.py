"""`roomhooks deliveries ...` against the served registry, on an account seeded with a webhook
and a delivery with a failed attempt (tests/support/tenants.py, as the tenancy tests seed it)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from tests.integration.test_cli import run_cli
from tests.integration.test_cli_webhooks import env, failed, fields, succeeded
from tests.support.services import free_port
from tests.support.tenants import Seeded, seed_account

pytestmark = pytest.mark.integration

__all__ = ["env"]  # the fixture, shared with test_cli_webhooks.py


@pytest.fixture
async def seeded(registry, pool: asyncpg.Pool) -> Seeded:
    return await seed_account(registry, pool, registry.alice)


async def test_list_shows_the_webhooks_deliveries_with_their_status(
    env: dict[str, str], tmp_path: Path, seeded: Seeded
) -> None:
    hook = seeded.webhook["id"]

    table = succeeded(await run_cli(["deliveries", "list", hook], env=env, cwd=tmp_path))
    pending = succeeded(
        await run_cli(["deliveries", "list", hook, "--status", "pending"], env=env, cwd=tmp_path)
    )
    failed_only = succeeded(
        await run_cli(["deliveries", "list", hook, "--status", "failed"], env=env, cwd=tmp_path)
    )

    header, *rows = table.splitlines()
    assert header.split()[:5] == ["ID", "EVENT", "STATUS", "CODE", "ATTEMPTS"]
    assert [row.split()[:5] for row in rows] == [
        [seeded.delivery_id, "participant.joined", "pending", "500", "1"]
    ]
    assert pending == table
    assert failed_only.splitlines()[1:] == []


async def test_list_since_and_until_keep_the_deliveries_created_in_that_window(
    env: dict[str, str], tmp_path: Path, seeded: Seeded, registry
) -> None:
    hook, now = seeded.webhook["id"], datetime.now(UTC)
    hour_ago, in_an_hour = (
        (now - timedelta(hours=1)).isoformat(),
        (now + timedelta(hours=1)).isoformat(),
    )

    async def listed(*window: str) -> list[str]:
        out = succeeded(await run_cli(["deliveries", "list", hook, *window], env=env, cwd=tmp_path))
        return [row.split()[0] for row in out.splitlines()[1:]]

    assert await listed("--since", hour_ago, "--until", in_an_hour) == [seeded.delivery_id]
    assert await listed("--since", in_an_hour) == []
    assert await listed("--until", hour_ago) == []
    # As the API answers: the same query through the CLI's --json and straight over HTTP.
    window = ["--since", hour_ago, "--until", in_an_hour, "--status", "pending", "--limit", "1"]
    out = succeeded(
        await run_cli(["deliveries", "list", hook, *window, "--json"], env=env, cwd=tmp_path)
    )
    resp = await registry.http.get(
        f"{registry.webhooks_url(registry.alice, hook)}/deliveries",
        params={"since": hour_ago, "until": in_an_hour, "status": "pending", "limit": "1"},
        headers=registry.alice.auth(),
    )
    assert json.loads(out) == (await resp.json())["data"]


async def test_a_window_the_api_refuses_exits_1_naming_the_bound(
    env: dict[str, str], tmp_path: Path, seeded: Seeded
) -> None:
    hook = seeded.webhook["id"]
    window = ["--since", "2026-05-29T10:00:00Z", "--until", "2026-05-29T09:00:00Z"]

    backwards = await run_cli(["deliveries", "list", hook, *window], env=env, cwd=tmp_path)

    assert "400 validation_error: until: must be later than since" in failed(backwards, 1)


async def test_json_is_the_apis_data(
    env: dict[str, str], tmp_path: Path, seeded: Seeded, registry
) -> None:
    hook = seeded.webhook["id"]

    out = succeeded(await run_cli(["deliveries", "list", hook, "--json"], env=env, cwd=tmp_path))

    resp = await registry.http.get(
        f"{registry.webhooks_url(registry.alice, hook)}/deliveries", headers=registry.alice.auth()
    )
    assert json.loads(out) == (await resp.json())["data"]


async def test_get_shows_the_delivery_every_attempt_and_the_payload(
    env: dict[str, str], tmp_path: Path, seeded: Seeded
) -> None:
    args = ["deliveries", "get", seeded.webhook["id"], seeded.delivery_id]

    delivery, attempts, payload = succeeded(await run_cli(args, env=env, cwd=tmp_path)).split(
        "\n\n"
    )
    data = json.loads(succeeded(await run_cli([*args, "--json"], env=env, cwd=tmp_path)))

    assert fields(delivery)["status"] == "pending"
    assert attempts.splitlines()[1].split()[0] == "1"
    assert f"receiver said no to {seeded.marker}" in attempts
    assert payload.splitlines() == ["payload", data["delivery"]["payload"]]
    assert [a["status_code"] for a in data["attempts"]] == [500]


async def test_redeliver_queues_a_new_attempt_of_that_delivery(
    env: dict[str, str], tmp_path: Path, seeded: Seeded
) -> None:
    args = ["deliveries", "redeliver", seeded.webhook["id"], seeded.delivery_id]

    out = succeeded(await run_cli(args, env=env, cwd=tmp_path))

    assert out.split() == ["delivery", seeded.delivery_id, "queued"]


async def test_recover_orders_a_job_for_the_window(
    env: dict[str, str], tmp_path: Path, seeded: Seeded, registry
) -> None:
    args = ["deliveries", "recover", seeded.webhook["id"], "--since", "2020-01-01T00:00:00Z"]

    job = fields(succeeded(await run_cli(args, env=env, cwd=tmp_path)))

    assert (job["kind"], job["webhook_id"]) == ("recover", seeded.webhook["id"])
    resp = await registry.http.get(
        f"{registry.url}/v1/accounts/{registry.alice.id}/jobs/{job['id']}",
        headers=registry.alice.auth(),
    )
    assert resp.status == 200


async def test_an_unknown_delivery_or_a_refused_window_exits_1(
    env: dict[str, str], tmp_path: Path, seeded: Seeded
) -> None:
    hook, missing = seeded.webhook["id"], str(uuid.uuid4())

    unknown = await run_cli(["deliveries", "get", hook, missing], env=env, cwd=tmp_path)
    future = await run_cli(
        ["deliveries", "recover", hook, "--since", "2999-01-01T00:00:00Z"], env=env, cwd=tmp_path
    )

    assert failed(unknown, 1).endswith(
        f"/deliveries/{missing}: 404 not_found: no such resource in this account"
    )
    assert "400 validation_error: since" in failed(future, 1)


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["deliveries", "list", "{hook}", "--status", "lost"], "--status: invalid choice"),
        (["deliveries", "get", "{hook}", "d-1"], "DELIVERY_ID: 'd-1' is not a UUID"),
        (["deliveries", "redeliver", "{hook}"], "the following arguments are required"),
        (["deliveries", "recover", "{hook}"], "the following arguments are required: --since"),
        (["deliveries", "recover", "{hook}", "--since", "yesterday"], "--since: 'yesterday'"),
        (["deliveries", "list", "{hook}", "--limit", "x"], "--limit: 'x' is not a number"),
        (["deliveries", "list", "{hook}", "--since", "soon"], "--since: 'soon'"),
        (["deliveries", "list", "{hook}", "--until", "2026-05-29T10:00"], "--until: '2026-05-29"),
    ],
    ids=[
        "status",
        "delivery-id",
        "no-delivery",
        "no-since",
        "bad-since",
        "limit",
        "list-bad-since",
        "list-until-without-offset",
    ],
)
async def test_bad_input_exits_2_with_one_line(
    env: dict[str, str], tmp_path: Path, seeded: Seeded, args: list[str], problem: str
) -> None:
    argv = [a.replace("{hook}", seeded.webhook["id"]) for a in args]

    assert failed(await run_cli(argv, env=env, cwd=tmp_path), 2).startswith(problem)


async def test_an_unreachable_registry_exits_1(
    env: dict[str, str], tmp_path: Path, seeded: Seeded
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    argv = ["deliveries", "list", seeded.webhook["id"]]

    result = await run_cli(argv, env={**env, "ROOMHOOKS_API_URL": url}, cwd=tmp_path)

    assert failed(result, 1).startswith(f"cannot reach the registry at {url}")
