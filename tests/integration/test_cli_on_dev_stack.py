"""The walk-through done with the CLI alone, on `roomhooks dev`: the commands take the API's URL,
the OWNER key, the account and the connections from the run.env the stack wrote, nothing else.

`webhooks create` prints the secret, `listen` verifies with it, `trigger` publishes a sample
room event, and `deliveries list` and `events get` show it delivered.
"""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from shared.events.samples import ADA, ROOM
from tests.integration import test_walkthrough
from tests.integration.test_walkthrough import delivered, indexed_webhooks, listening
from tests.support.devstack import Stack, clean_environ, run_cli
from tests.support.polling import eventually
from tests.support.services import free_port

pytestmark = pytest.mark.integration

__all__ = ["fanout_health_port", "stack"]  # test_walkthrough.py's fixtures
stack = test_walkthrough.stack
fanout_health_port = test_walkthrough.fanout_health_port
TIMEOUT_S = 30.0


async def roomhooks(*args: str, env: dict[str, str], cwd: Path) -> str:
    """stdout of a CLI command that succeeded, saying nothing on stderr."""
    done = await run_cli(*args, env=env, cwd=cwd)
    assert (done.process.returncode, done.stderr) == (0, []), done.output()
    return "\n".join(done.stdout)


async def test_the_cli_alone_creates_a_webhook_triggers_an_event_and_finds_it_delivered(
    stack: Stack, fanout_health_port: int, tmp_path: Path
) -> None:
    env = {**clean_environ(), "ROOMHOOKS_DEV_STATE_DIR": str(stack.state_dir)}
    port = free_port()
    created = await run_cli(
        "webhooks", "create", "--url", f"http://127.0.0.1:{port}/collab-webhook",
        "--events", "participant.joined", "--room", ROOM["id"], "--json",
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert created.process.returncode == 0, created.output()
    webhook = json.loads("\n".join(created.stdout))["webhook"]
    assert webhook["organization_id"] == stack.run_env()["ROOMHOOKS_ACCOUNT_ID"]

    async with (
        listening(port, webhook["secret"], tmp_path) as listen,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
    ):

        async def indexed() -> bool:
            return await indexed_webhooks(http, fanout_health_port) >= 1

        await eventually(indexed, timeout_s=TIMEOUT_S, interval_s=0.2)
        event_id = await roomhooks("trigger", "participant.joined", env=env, cwd=tmp_path)

        joined = await delivered(listen, "participant.joined")
        assert (joined.head["hex"], joined.head["standard"]) == ("valid", "valid")
        assert joined.body["id"] == event_id
        assert joined.body["data"] == {"roomId": ROOM["id"], "userId": ADA["id"]}

    async def settled() -> list[str] | None:
        table = await roomhooks("deliveries", "list", webhook["id"], env=env, cwd=tmp_path)
        rows = [row.split() for row in table.splitlines()[1:]]
        return rows[0] if rows and rows[0][2] != "pending" else None

    row = await eventually(settled, timeout_s=TIMEOUT_S, interval_s=0.5)
    assert row[:5] == [joined.head["delivery"], "participant.joined", "success", "200", "1"]
    logged = await roomhooks("events", "get", event_id, env=env, cwd=tmp_path)
    assert f"{webhook['id']}  {joined.head['delivery']}  success" in logged
