"""The README's walk-through and "See a delivery", followed as written, on `roomhooks dev`.

Create a webhook with the OWNER key from run.env, run `roomhooks listen` with its secret,
`roomhooks publish` a room event, and see the signed delivery arrive and land in the log;
then the `webhook.test` ping.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.devstack import (
    CliProcess,
    Stack,
    clean_environ,
    dev_environ,
    ready_stack,
    run_cli,
    start_cli,
)
from tests.support.polling import eventually
from tests.support.services import free_port

pytestmark = pytest.mark.integration

ROOM_ID = "c3003c93-60cf-4184-b85f-20be14d26dac"
ROOM = {"id": ROOM_ID, "name": "Design review"}
USER = {"id": "user-001", "name": "Ada", "token": "never-forwarded"}
INDEX_TIMEOUT_S = 30.0
DELIVERY_TIMEOUT_S = 30.0
# What `listen` prints before each body: when, the status it answered, what it got.
HEAD = re.compile(
    r"(?P<at>\S+) (?P<status>\d{3}) (?P<event>\S+) delivery=(?P<delivery>\S+)"
    r" attempt=(?P<attempt>\S+)"
    r" X-Webhook-Signature=(?P<hex>\S+) webhook-signature=(?P<standard>\S+)"
)


@pytest.fixture
def fanout_health_port() -> int:
    return free_port()


@pytest.fixture
async def stack(tmp_path: Path, database_url: str, fanout_health_port: int) -> AsyncIterator[Stack]:
    """`roomhooks dev` on the test's own database and ports, probes included."""
    state_dir = tmp_path / "state"
    env = dev_environ(
        state_dir,
        DATABASE_URL=database_url,
        ROOMHOOKS_FANOUT_HEALTH_PORT=str(fanout_health_port),
        ROOMHOOKS_DELIVERY_HEALTH_PORT=str(free_port()),
    )
    async with ready_stack(env, state_dir) as running:
        yield running


class Api:
    """The README's curl lines: `$API` with `$AUTH` (the OWNER key)."""

    def __init__(self, http: aiohttp.ClientSession, run_env: dict[str, str]) -> None:
        self._http = http
        self.webhooks = (
            f"{run_env['ROOMHOOKS_API_URL']}/v1/accounts/{run_env['ROOMHOOKS_ACCOUNT_ID']}/webhooks"
        )
        self._auth = {"Authorization": f"Bearer {run_env['ROOMHOOKS_OWNER_TOKEN']}"}

    async def call(self, method: str, path: str = "", body: Any = None) -> tuple[int, Any]:
        async with self._http.request(
            method, self.webhooks + path, json=body, headers=self._auth
        ) as response:
            return response.status, await response.json()


@dataclass(frozen=True)
class Printed:
    """One delivery as `listen` printed it: the head line's fields and the body."""

    head: dict[str, str]
    text: str

    @property
    def body(self) -> dict[str, Any]:
        return json.loads(self.text)


def printed_deliveries(lines: list[str]) -> list[Printed]:
    """`listen`'s output as deliveries: a head line, then indented JSON up to its `}`."""
    found = []
    i = 0
    while i < len(lines):
        head = HEAD.fullmatch(lines[i])
        if head is None:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j] == "}"), None)
        if end is None:  # the body is still arriving
            break
        found.append(Printed(head.groupdict(), "\n".join(lines[i + 1 : end + 1])))
        i = end + 1
    return found


async def delivered(listen: CliProcess, event: str) -> Printed:
    async def printed() -> Printed | None:
        assert listen.process.returncode is None, listen.output()
        return next(
            (p for p in printed_deliveries(listen.stdout) if p.head["event"] == event), None
        )

    try:
        return await eventually(printed, timeout_s=DELIVERY_TIMEOUT_S, interval_s=0.1)
    except AssertionError as exc:
        raise AssertionError(f"listen printed no {event}: {exc}\n{listen.output()}") from None


@contextlib.asynccontextmanager
async def listening(port: int, secret: str, folder: Path) -> AsyncIterator[CliProcess]:
    """`roomhooks listen --port P --secret-file F` with the secret in F, up; stopped afterwards."""
    secrets = folder / "webhook-secrets"
    secrets.write_text(f"{secret}\n")
    secrets.chmod(0o600)
    listen = await start_cli(
        "listen", "--port", str(port), "--secret-file", str(secrets), env=clean_environ()
    )
    try:
        await listen.wait_for_line(lambda line: "listening on" in line, timeout_s=15)
        yield listen
    finally:
        await listen.stop()


async def indexed_webhooks(http: aiohttp.ClientSession, health_port: int) -> float:
    """Enabled webhooks in fanout's index (its /metrics); 0 while it does not answer."""
    try:
        async with http.get(f"http://127.0.0.1:{health_port}/metrics") as response:
            text = await response.text()
    except (aiohttp.ClientError, TimeoutError):
        return 0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name == "roomhooks_fanout_index_webhooks"
                and sample.labels.get("state") == "enabled"
            ):
                return sample.value
    return 0


async def test_readme_walk_through_delivers_a_signed_event_and_logs_it(
    stack: Stack, fanout_health_port: int, tmp_path: Path
) -> None:
    run_env = stack.run_env()
    receiver_port = free_port()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        api = Api(http, run_env)
        status, created = await api.call(
            "POST",
            body={
                "url": f"http://127.0.0.1:{receiver_port}/collab-webhook",
                "events": ["participant.joined", "participant.left"],
                "roomId": ROOM_ID,
            },
        )
        assert status == 201, created
        webhook = created["data"]["webhook"]
        assert re.fullmatch(r"[0-9a-f]{64}", webhook["secret"])

        async with listening(receiver_port, webhook["secret"], tmp_path) as listen:
            # Publishing before fanout indexed the webhook would match nothing.
            async def indexed() -> bool:
                return await indexed_webhooks(http, fanout_health_port) >= 1

            await eventually(indexed, timeout_s=INDEX_TIMEOUT_S, interval_s=0.2)

            # As after `source .roomhooks/run.env`, from a folder with no .roomhooks/ of its own.
            publish = await run_cli(
                "publish",
                "--account",
                run_env["ROOMHOOKS_ACCOUNT_ID"],
                "--event",
                "participant.joined",
                "--room",
                json.dumps(ROOM),
                "--user",
                json.dumps(USER),
                env=clean_environ() | run_env,
                cwd=tmp_path,
            )
            assert publish.process.returncode == 0, publish.output()
            assert len(publish.stdout) == 1, publish.output()
            event_id = str(uuid.UUID(publish.stdout[0]))

            joined = await delivered(listen, "participant.joined")
            assert (joined.head["attempt"], joined.head["status"]) == ("1", "200")
            assert joined.head["hex"] == "valid", listen.output()
            assert joined.head["standard"] == "valid", listen.output()
            assert '"userId": "user-001"' in joined.text
            assert joined.body["id"] == event_id
            assert joined.body["organization_id"] == run_env["ROOMHOOKS_ACCOUNT_ID"]
            assert joined.body["room"] == ROOM
            assert joined.body["user"] == {"id": "user-001", "name": "Ada"}
            assert joined.body["data"] == {"roomId": ROOM_ID, "userId": "user-001"}
            assert "never-forwarded" not in "\n".join(listen.stdout)

            async def settled() -> list[dict[str, Any]] | None:
                status, page = await api.call("GET", f"/{webhook['id']}/deliveries?limit=10")
                assert status == 200, page
                deliveries = page["data"]["deliveries"]
                return deliveries if deliveries and deliveries[0]["status"] != "pending" else None

            deliveries = await eventually(settled, timeout_s=DELIVERY_TIMEOUT_S, interval_s=0.2)
            assert len(deliveries) == 1, deliveries
            delivery = deliveries[0]
            assert delivery["id"] == joined.head["delivery"]
            assert delivery["event"] == "participant.joined"
            assert delivery["event_id"] == event_id
            assert (delivery["status"], delivery["attempts"], delivery["status_code"]) == (
                "success",
                1,
                200,
            )

            status, one = await api.call("GET", f"/{webhook['id']}/deliveries/{delivery['id']}")
            assert status == 200, one
            assert one["data"]["delivery"]["id"] == delivery["id"]
            assert len(one["data"]["attempts"]) == 1, one
            assert one["data"]["attempts"][0]["status_code"] == 200

            status, queued = await api.call("POST", f"/{webhook['id']}/test")
            assert status == 202, queued
            ping = await delivered(listen, "webhook.test")
            assert ping.head["delivery"] == queued["data"]["delivery_id"]
            assert ping.head["hex"] == "valid", listen.output()
            assert ping.head["standard"] == "valid", listen.output()
            assert ping.body["event"] == "webhook.test"
            assert "INVALID" not in "\n".join(listen.stdout)
