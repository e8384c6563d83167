"""`roomhooks listen` as a user runs it: its secrets from a file (re-read without a restart) or
the environment, the time and status it answered printed, and, through a running `roomhooks
dev`, a real delivery relayed by `--forward-to` to a local app byte-identical and signed."""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from services.delivery.dispatcher import build_headers
from shared.signing import new_secret, verify_hex, verify_standard
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

DELIVERY_TIMEOUT_S = 30.0
STARTED_TIMEOUT_S = 15.0
# `listen`'s head line: time, status answered, event, delivery, attempt, each verdict.
HEAD = re.compile(
    r"(?P<at>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (?P<status>\d{3}) (?P<event>\S+)"
    r" delivery=(?P<delivery>\S+) attempt=(?P<attempt>\S+)"
    r" X-Webhook-Signature=(?P<hex>\S+) webhook-signature=(?P<standard>\S+)"
)
APP_ANSWER = b'{"handled":true}'


@dataclass
class LocalApp:
    """The app a developer runs beside `listen`: records what it gets, answers 201."""

    received: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((await request.read(), dict(request.headers)))
        return web.Response(status=201, body=APP_ANSWER, content_type="application/json")


@contextlib.asynccontextmanager
async def local_app() -> AsyncIterator[tuple[LocalApp, str]]:
    app = LocalApp()
    served = web.Application()
    served.router.add_post("/webhooks/roomhooks", app.handle)
    server = TestServer(served, host="127.0.0.1")
    await server.start_server()
    try:
        yield app, str(server.make_url("/webhooks/roomhooks"))
    finally:
        await server.close()


@contextlib.asynccontextmanager
async def listening(*args: str, env: dict[str, str] | None = None) -> AsyncIterator[CliProcess]:
    listen = await start_cli("listen", *args, env=env or clean_environ())
    try:
        await listen.wait_for_line(lambda line: "listening on" in line, timeout_s=STARTED_TIMEOUT_S)
        yield listen
    finally:
        await listen.stop()


def heads(listen: CliProcess) -> list[dict[str, str]]:
    return [m.groupdict() for line in listen.stdout if (m := HEAD.fullmatch(line))]


def secret_file(folder: Path, text: str = "") -> Path:
    path = folder / "webhook-secrets"
    path.write_text(text)
    path.chmod(0o600)
    return path


async def post_signed(url: str, secret: str, body: bytes, *, event: str = "webhook.test"):
    """A request signed as the delivery service signs one."""
    sent = build_headers(
        secret=secret,
        body=body,
        delivery_id="d-1",
        event=event,
        attempt=1,
        timestamp=int(time.time()),
        user_agent="roomhooks/test",
    )
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
        http.post(url, data=body, headers=sent) as answer,
    ):
        return answer.status, await answer.read()


# --- through the running platform ----------------------------------------------------------


@pytest.fixture
async def stack(tmp_path: Path, database_url: str) -> AsyncIterator[Stack]:
    state_dir = tmp_path / "state"
    env = dev_environ(
        state_dir,
        DATABASE_URL=database_url,
        ROOMHOOKS_FANOUT_HEALTH_PORT=str(free_port()),
        ROOMHOOKS_DELIVERY_HEALTH_PORT=str(free_port()),
    )
    async with ready_stack(env, state_dir) as running:
        yield running


class Webhooks:
    def __init__(self, http: aiohttp.ClientSession, run_env: dict[str, str]) -> None:
        self._http = http
        self.url = (
            f"{run_env['ROOMHOOKS_API_URL']}/v1/accounts/{run_env['ROOMHOOKS_ACCOUNT_ID']}/webhooks"
        )
        self._auth = {"Authorization": f"Bearer {run_env['ROOMHOOKS_OWNER_TOKEN']}"}

    async def call(self, method: str, path: str = "", body: Any = None) -> Any:
        async with self._http.request(
            method, self.url + path, json=body, headers=self._auth
        ) as answer:
            assert answer.status < 300, await answer.text()
            return (await answer.json())["data"]


async def test_listen_forwards_a_real_delivery_to_a_local_app_byte_identical_and_signed(
    stack: Stack, tmp_path: Path
) -> None:
    secrets = secret_file(tmp_path, "# filled in once the webhook exists\n")
    port = free_port()
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
        local_app() as (app, app_url),
        listening(
            "--port", str(port), "--secret-file", str(secrets), "--forward-to", app_url
        ) as listen,
    ):
        api = Webhooks(http, stack.run_env())
        created = await api.call(
            "POST", body={"url": f"http://127.0.0.1:{port}/hook", "events": ["participant.joined"]}
        )
        webhook = created["webhook"]
        delivery_id = (await api.call("POST", f"/{webhook['id']}/test"))["delivery_id"]

        # No secret in the file yet: 401, and the app sees nothing.
        async def refused() -> bool:
            return any(h["status"] == "401" for h in heads(listen))

        await eventually(refused, timeout_s=DELIVERY_TIMEOUT_S, interval_s=0.1)
        assert app.received == [], listen.output()
        # The secret added while `listen` runs: the next attempt verifies, no restart.
        secrets.write_text(f"{webhook['secret']}\n")

        async def forwarded() -> list[tuple[bytes, dict[str, str]]]:
            assert listen.process.returncode is None, listen.output()
            return app.received

        [(body, headers)] = await eventually(
            forwarded, timeout_s=DELIVERY_TIMEOUT_S, interval_s=0.1
        )

        async def settled() -> dict[str, Any] | None:
            one = await api.call("GET", f"/{webhook['id']}/deliveries/{delivery_id}")
            return one if one["delivery"]["status"] == "success" else None

        log = await eventually(settled, timeout_s=DELIVERY_TIMEOUT_S, interval_s=0.2)

    # The signatures the delivery service made still verify the bytes the app got.
    assert verify_hex(webhook["secret"], body, headers["X-Webhook-Signature"])
    assert verify_standard(webhook["secret"], body, headers, now=int(time.time()))
    assert headers["webhook-id"] == headers["X-Webhook-Delivery"] == delivery_id
    assert json.loads(body)["event"] == "webhook.test"
    # roomhooks was answered with the app's answer; before the secret was in the file, 401.
    *before, last = log["attempts"]
    assert (last["status_code"], last["response_body"]) == (201, APP_ANSWER.decode()), log
    assert before and {a["status_code"] for a in before} == {401}, log
    printed = heads(listen)
    assert [h["status"] for h in printed] == ["401"] * len(before) + ["201"], listen.output()
    assert printed[-1]["delivery"] == delivery_id and printed[-1]["hex"] == "valid"
    assert f"  forwarded to {app_url}: 201 in " in "\n".join(listen.stdout)
    assert f"{secrets}: read again: 1 secret(s)" in "\n".join(listen.stderr)


# --- the command alone ---------------------------------------------------------------------


async def test_listen_without_any_secret_exits_2_naming_the_three_ways() -> None:
    result = await run_cli("listen", "--port", str(free_port()), env=clean_environ())
    assert result.process.returncode == 2, result.output()
    [line] = result.stderr
    assert line.startswith("roomhooks: error: no webhook secret: give --secret-file PATH")
    assert "ROOMHOOKS_LISTEN_SECRETS" in line and "--secret S" in line


async def test_listen_takes_several_secrets_from_the_environment_and_answers_the_status_given() -> (
    None
):
    first, second = new_secret(), new_secret()
    port = free_port()
    env = clean_environ() | {"ROOMHOOKS_LISTEN_SECRETS": f"{first}, {second}"}
    async with listening("--port", str(port), "--status", "503", env=env) as listen:
        url = f"http://127.0.0.1:{port}/hook"
        answers = [await post_signed(url, s, b'{"n":1}') for s in (first, second, new_secret())]
        await listen.wait_for_line(lambda line: " 401 " in line, timeout_s=STARTED_TIMEOUT_S)
    assert answers[:2] == [(503, b'{"status": 503, "reason": "Service Unavailable"}')] * 2
    assert answers[2][0] == 401
    assert [h["status"] for h in heads(listen)] == ["503", "503", "401"], listen.output()
    assert listen.stderr == [], listen.output()
    assert "verifying with 2 from ROOMHOOKS_LISTEN_SECRETS" in listen.stdout


async def test_listen_with_secret_on_the_command_line_works_and_warns_it_is_visible() -> None:
    secret = new_secret()
    port = free_port()
    async with listening("--port", str(port), "--secret", secret) as listen:
        status, _ = await post_signed(f"http://127.0.0.1:{port}/", secret, b"{}")
    assert status == 200
    assert any("visible to other users" in line for line in listen.stderr), listen.output()
    assert not any(secret in line for line in listen.stdout + listen.stderr)
