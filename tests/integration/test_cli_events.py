"""`roomhooks events list|get` against the served registry, on an account whose event log holds
an event that reached a webhook and a workflow (seeded as the tenancy tests seed it)."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

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


async def test_list_shows_the_accounts_events_and_filters_them(
    env: dict[str, str], tmp_path: Path, seeded: Seeded
) -> None:
    listed = succeeded(await run_cli(["events", "list"], env=env, cwd=tmp_path))
    same_name = succeeded(
        await run_cli(["events", "list", "--event", "participant.joined"], env=env, cwd=tmp_path)
    )
    other_name = succeeded(
        await run_cli(["events", "list", "--event", "session.started"], env=env, cwd=tmp_path)
    )
    rejected = succeeded(
        await run_cli(["events", "list", "--status", "rejected"], env=env, cwd=tmp_path)
    )

    header, *rows = listed.splitlines()
    assert header.split()[:3] == ["ID", "EVENT", "STATUS"]
    assert [row.split()[:6] for row in rows] == [
        [seeded.event_id, "participant.joined", "accepted", "-", "1", "1"]
    ]
    assert same_name == listed
    assert other_name.splitlines()[1:] == rejected.splitlines()[1:] == []


async def test_json_is_the_apis_data(
    env: dict[str, str], tmp_path: Path, seeded: Seeded, registry
) -> None:
    argv = ["events", "list", "--since", "2020-01-01T00:00:00Z", "--json"]

    out = succeeded(await run_cli(argv, env=env, cwd=tmp_path))

    resp = await registry.http.get(
        f"{registry.url}/v1/accounts/{registry.alice.id}/events", headers=registry.alice.auth()
    )
    assert json.loads(out) == (await resp.json())["data"]
    assert [e["id"] for e in json.loads(out)["events"]] == [seeded.event_id]


async def test_get_shows_the_event_whom_it_reached_and_the_payload(
    env: dict[str, str], tmp_path: Path, seeded: Seeded
) -> None:
    out = succeeded(await run_cli(["events", "get", seeded.event_id], env=env, cwd=tmp_path))

    record, webhooks, workflows, payload = out.split("\n\n")
    assert fields(record)["id"] == seeded.event_id
    assert webhooks.splitlines()[1].split()[:2] == [seeded.webhook["id"], seeded.delivery_id]
    assert workflows.splitlines()[1].split()[:2] == [seeded.workflow["id"], seeded.execution_id]
    assert payload.startswith("payload\n") and seeded.marker in payload


async def test_an_unknown_event_exits_1_and_an_awkward_id_is_sent_as_one_path_part(
    env: dict[str, str], tmp_path: Path, seeded: Seeded
) -> None:
    awkward = "evt/../x?y=1"

    result = await run_cli(["events", "get", awkward], env=env, cwd=tmp_path)

    line = failed(result, 1)
    assert line.endswith("404 not_found: no such resource in this account")
    assert f"/events/{quote(awkward, safe='')}:" in line


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["events", "list", "--event", "party.started"], "--event: unknown event"),
        (["events", "list", "--status", "lost"], "--status: invalid choice"),
        (["events", "list", "--until", "tomorrow"], "--until: 'tomorrow' is not an RFC 3339"),
        (["events", "get"], "the following arguments are required: EVENT_ID"),
    ],
    ids=["event", "status", "until", "no-id"],
)
async def test_bad_input_exits_2_with_one_line(
    env: dict[str, str], tmp_path: Path, args: list[str], problem: str
) -> None:
    assert failed(await run_cli(args, env=env, cwd=tmp_path), 2).startswith(problem)


async def test_an_unreachable_registry_exits_1(env: dict[str, str], tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"

    result = await run_cli(["events", "list"], env={**env, "ROOMHOOKS_API_URL": url}, cwd=tmp_path)

    assert failed(result, 1).startswith(f"cannot reach the registry at {url}")
