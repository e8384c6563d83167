"""`roomhooks dev` as `make run` starts it: says ready once every service is, on a database of
its own, serves the API, restarts, stops leaving nothing."""

from __future__ import annotations

import re
import signal
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import psutil
import pytest

from devtool.postgres import SHARED_DATABASE, checkout_database, database_in
from devtool.runenv import render_run_env
from shared.db import with_database
from tests.support.devstack import (
    EXIT_TIMEOUT_S,
    READY_TIMEOUT_S,
    Stack,
    alive,
    children_of,
    command_line,
    dev_environ,
    ready_stack,
    start_stack,
    stop_for_good,
)
from tests.support.polling import eventually
from tests.support.services import free_port

pytestmark = pytest.mark.integration

SEED_ROOM_ID = "c3003c93-60cf-4184-b85f-20be14d26dac"


@pytest.fixture
async def running(tmp_path: Path, database_url: str) -> AsyncIterator[Stack]:
    """A ready stack on the test's own database, ports and state folder, for a test that
    stops it or kills a part of it."""
    state_dir = tmp_path / "state"
    async with ready_stack(dev_environ(state_dir, DATABASE_URL=database_url), state_dir) as stack:
        yield stack


async def broker_and_services(stack: Stack) -> list[psutil.Process]:
    """The stack's child processes, once both the broker and the registry are among them."""

    async def both() -> list[psutil.Process] | None:
        children = children_of(stack.process.pid)
        lines = [command_line(c) for c in children]
        has_broker = any("tansu" in line and " broker " in line for line in lines)
        has_registry = any("services.registry" in line for line in lines)
        return children if has_broker and has_registry else None

    return await eventually(both, timeout_s=10)


async def post_webhook(api: str, account: str, token: str) -> tuple[int, dict]:
    body = {
        "url": f"http://127.0.0.1:{free_port()}/hook",
        "events": ["participant.joined", "participant.left"],
        "roomId": SEED_ROOM_ID,
    }
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.post(
            f"{api}/v1/accounts/{account}/webhooks",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        ) as response,
    ):
        return response.status, await response.json()


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_serves_the_api_with_dev_keys_and_stops_everything_on_a_signal(
    running: Stack, stop_signal: signal.Signals
) -> None:
    env = running.run_env()
    children = await broker_and_services(running)

    status, created = await post_webhook(
        env["ROOMHOOKS_API_URL"], env["ROOMHOOKS_ACCOUNT_ID"], env["ROOMHOOKS_OWNER_TOKEN"]
    )
    assert status == 201, created
    assert re.fullmatch(r"[0-9a-f]{64}", created["data"]["webhook"]["secret"])
    assert created["data"]["webhook"]["room_id"] == SEED_ROOM_ID

    status, refused = await post_webhook(
        env["ROOMHOOKS_API_URL"], env["ROOMHOOKS_ACCOUNT_ID"], env["ROOMHOOKS_MEMBER_TOKEN"]
    )
    assert status == 403, refused

    running.process.send_signal(stop_signal)
    assert await running.exit_code(timeout_s=EXIT_TIMEOUT_S) == 0, running.output()
    survivors = [command_line(c) for c in children if alive(c)]
    assert survivors == []


# A structlog line at warning or above, or a Python warning (`...: SomeWarning: ...`).
NOT_QUIET = re.compile(r"\[(warning|error|critical)\s*\]|\w+Warning: ")


async def test_names_the_service_that_never_got_ready_and_never_says_ready(
    tmp_path: Path, database_url: str
) -> None:
    state_dir = tmp_path / "state"
    env = dev_environ(
        state_dir,
        DATABASE_URL=database_url,
        ROOMHOOKS_WORKFLOWS_MAX_HOSTS="0",  # refused by its settings: it exits on every start
        ROOMHOOKS_DEV_READY_TIMEOUT_S="10",
    )
    stack = await start_stack(env, state_dir)
    try:
        code = await stack.exit_code(timeout_s=READY_TIMEOUT_S)
    finally:
        await stop_for_good(stack)
    assert code == 1, stack.output()
    assert not any("roomhooks ready" in line for line in stack.stdout), stack.output()
    [error] = [line for line in stack.stderr if line.startswith("roomhooks: error:")]
    assert "within 10 s: workflow_runner (no answer" in error, error
    for service in ("registry", "fanout", "delivery"):
        assert f"{service} (" not in error, error


async def test_names_its_database_after_its_state_folder(tmp_path: Path, postgres_url: str) -> None:
    """On a server the stack chooses itself (here the tests' own, named without a database),
    the database is the checkout's own; removed afterwards."""
    state_dir = tmp_path / "state"
    server = with_database(postgres_url, "")
    env = dev_environ(state_dir, ROOMHOOKS_DEV_LOCAL_POSTGRES_URL=server)
    own = checkout_database(str(state_dir.resolve()))
    try:
        async with ready_stack(env, state_dir) as stack:
            assert database_in(stack.run_env()["DATABASE_URL"]) == own
            assert f"  database     {own}: this checkout's own" in stack.stdout
    finally:
        admin = await asyncpg.connect(with_database(postgres_url, "postgres"))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{own}" WITH (FORCE)')
        finally:
            await admin.close()


async def test_restarts_a_service_that_dies(running: Stack) -> None:
    registry = next(
        c for c in await broker_and_services(running) if "services.registry" in command_line(c)
    )
    registry.kill()

    await running.wait_for_line(
        lambda line: "registry exited with code -9; restarting in 1 s" in line, timeout_s=10
    )

    async def replaced() -> bool:
        return any(
            "services.registry" in command_line(c) and c.pid != registry.pid
            for c in children_of(running.process.pid)
        )

    await eventually(replaced, timeout_s=15)
    api = running.run_env()["ROOMHOOKS_API_URL"]
    await eventually(lambda: api_ready(api), timeout_s=30)


async def api_ready(api: str) -> bool:
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session,
            session.get(f"{api}/readyz") as response,
        ):
            return response.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


async def test_keeps_the_dev_account_on_the_next_run(tmp_path: Path, database_url: str) -> None:
    state_dir = tmp_path / "state"
    saved = []
    for _run in range(2):
        stack = await start_stack(dev_environ(state_dir, DATABASE_URL=database_url), state_dir)
        try:
            await stack.wait_for_line(lambda line: "roomhooks ready" in line, timeout_s=90)
            saved.append(stack.run_env())
        finally:
            await stop_for_good(stack)
        assert stack.process.returncode == 0, stack.output()

    keys = (
        "ROOMHOOKS_ACCOUNT_ID",
        "ROOMHOOKS_OWNER_TOKEN",
        "ROOMHOOKS_MEMBER_TOKEN",
        "ROOMHOOKS_SECRETS_KEY",  # the database holds secrets sealed with it
    )
    assert [saved[1][k] for k in keys] == [saved[0][k] for k in keys]


async def test_fails_at_once_when_the_api_port_is_busy(tmp_path: Path, database_url: str) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        env = dev_environ(
            tmp_path / "state", DATABASE_URL=database_url, ROOMHOOKS_REGISTRY_PORT=str(busy)
        )
        started = time.monotonic()
        stack = await start_stack(env, tmp_path / "state")
        code = await stack.exit_code(timeout_s=EXIT_TIMEOUT_S)

    assert code == 1
    assert time.monotonic() - started < 10
    assert len(stack.stderr) == 1, stack.output()
    assert stack.stderr[0].startswith("roomhooks: error: port ")
    assert str(busy) in stack.stderr[0]
    assert stack.stdout == []


async def test_moves_the_broker_to_a_free_port_when_its_own_is_busy(
    tmp_path: Path, database_url: str
) -> None:
    state_dir = tmp_path / "state"
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        env = dev_environ(state_dir, DATABASE_URL=database_url, ROOMHOOKS_DEV_KAFKA_PORT=str(busy))
        stack = await start_stack(env, state_dir)
        try:
            await stack.wait_for_line(
                lambda line: f"port {busy} is busy; the broker listens on" in line, timeout_s=30
            )
            await stack.wait_for_line(lambda line: "roomhooks ready" in line, timeout_s=90)
            assert stack.run_env()["KAFKA_BOOTSTRAP_SERVERS"] != f"127.0.0.1:{busy}"
        finally:
            await stop_for_good(stack)
    assert stack.process.returncode == 0, stack.output()


async def test_falls_back_to_an_embedded_postgres_and_stops_it(tmp_path: Path) -> None:
    """With a run.env that names the database all checkouts shared before: it is kept (here
    in the embedded server's own data, so no test touches a shared one)."""
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    nobody_listens = f"postgresql://postgres@127.0.0.1:{free_port()}"
    earlier = {"DATABASE_URL": f"{nobody_listens}/{SHARED_DATABASE}"}
    (state_dir / "run.env").write_text(render_run_env(earlier))
    stack = await start_stack(
        dev_environ(state_dir, ROOMHOOKS_DEV_LOCAL_POSTGRES_URL=nobody_listens), state_dir
    )
    postmaster: list[psutil.Process] = []
    try:
        await stack.wait_for_line(lambda line: "roomhooks ready" in line, timeout_s=READY_TIMEOUT_S)
        env = stack.run_env()
        pgdata = state_dir.resolve() / "pgdata"
        assert str(pgdata) in env["DATABASE_URL"]
        assert database_in(env["DATABASE_URL"]) == SHARED_DATABASE
        assert not [x for x in stack.stdout + stack.stderr if NOT_QUIET.search(x)], stack.output()
        assert any(f"  database     {SHARED_DATABASE}: this checkout's" in x for x in stack.stdout)
        postmaster.append(psutil.Process(int((pgdata / "postmaster.pid").read_text().split()[0])))
        assert alive(postmaster[0])

        status, created = await post_webhook(
            env["ROOMHOOKS_API_URL"], env["ROOMHOOKS_ACCOUNT_ID"], env["ROOMHOOKS_OWNER_TOKEN"]
        )
        assert status == 201, created

        stack.process.send_signal(signal.SIGINT)
        assert await stack.exit_code(timeout_s=EXIT_TIMEOUT_S) == 0, stack.output()
        assert not alive(postmaster[0])
    finally:
        await stop_for_good(stack, *postmaster)
