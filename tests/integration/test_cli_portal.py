"""`roomhooks portal create` against the served registry: a one-time link limited as asked,
that the portal's exchange accepts once; bad input (exit 2) and refusals (exit 1)."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from services.registry.policy import Role
from tests.integration.test_cli import run_cli
from tests.integration.test_cli_webhooks import api_env, create, env, failed, fields, succeeded

pytestmark = pytest.mark.integration

__all__ = ["env"]  # fixture


async def exchange(registry, url: str) -> tuple[int, dict]:
    token = urlsplit(url).fragment.removeprefix("token=")
    resp = await registry.http.post(
        f"{registry.url}/v1/portal-sessions/exchange", json={"token": token}
    )
    return resp.status, await resp.json()


async def test_create_prints_a_link_to_the_portal_that_is_exchanged_once_for_its_webhooks(
    env: dict[str, str], tmp_path: Path, registry
) -> None:
    hook = await create(env, tmp_path)

    made = fields(
        succeeded(
            await run_cli(
                ["portal", "create", "--webhook", hook["id"], "--read-only", "--ttl", "600"],
                env=env,
                cwd=tmp_path,
            )
        )
    )

    assert urlsplit(made["url"]).path == "/console/portal"
    status, body = await exchange(registry, made["url"])
    assert status == 200, body
    session = body["data"]
    assert (session["webhook_ids"], session["read_only"]) == ([hook["id"]], True)
    assert session["account_id"] == registry.alice.id
    again, _ = await exchange(registry, made["url"])
    assert again == 401


async def test_json_prints_the_apis_data_and_defaults_reach_every_webhook(
    env: dict[str, str], tmp_path: Path, registry
) -> None:
    result = succeeded(await run_cli(["portal", "create", "--json"], env=env, cwd=tmp_path))

    data = json.loads(result)
    assert set(data) == {"url", "expires_at"}
    status, body = await exchange(registry, data["url"])
    assert (status, body["data"]["webhook_ids"], body["data"]["read_only"]) == (200, None, False)


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--ttl", "59"], "--ttl: 59 is not between 60 and 86400"),
        (["--ttl", "soon"], "--ttl: 'soon' is not a whole number"),
        (["--webhook", "nope"], "--webhook: 'nope' is not a UUID"),
    ],
    ids=["ttl-short", "ttl-text", "webhook"],
)
async def test_bad_input_exits_2_with_one_line(
    env: dict[str, str], tmp_path: Path, args: list[str], problem: str
) -> None:
    result = await run_cli(["portal", "create", *args], env=env, cwd=tmp_path)

    assert failed(result, 2).startswith(problem)


async def test_a_member_key_and_another_accounts_webhook_are_refused_with_exit_1(
    cli_env: dict[str, str], env: dict[str, str], tmp_path: Path, registry
) -> None:
    member = await run_cli(
        ["portal", "create"], env=api_env(cli_env, registry, role=Role.MEMBER), cwd=tmp_path
    )
    bobs = await create({**env, "ROOMHOOKS_API_KEY": registry.bob.owner,
                         "ROOMHOOKS_ACCOUNT_ID": registry.bob.id}, tmp_path)  # fmt: skip
    foreign = await run_cli(["portal", "create", "--webhook", bobs["id"]], env=env, cwd=tmp_path)

    assert "403 forbidden: " in failed(member, 1)
    assert "400 validation_error: webhookIds" in failed(foreign, 1)
