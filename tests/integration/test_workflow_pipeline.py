"""Workflows end to end: registry -> fanout -> runner -> Deno, with the guide's examples."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest

from services.fanout.app import Fanout
from services.fanout.settings import FanoutSettings
from services.workflow_runner.app import Runner
from services.workflow_runner.settings import RunnerSettings
from shared.events import build_event
from shared.kafka import JSON_HEADERS, dumps
from shared.messages import WorkflowRunRequested, run_id_for
from shared.room_state import state_key
from tests.support.kafka import read_topic
from tests.support.polling import eventually
from tests.support.receiver import Receiver
from tests.support.sandbox import LOG_NEW_PARTICIPANTS, NOTIFY_SLACK, WELCOME_STORE_ENTRY
from tests.support.services import free_port

pytestmark = pytest.mark.integration

ROOM = {"id": "c3003c93-60cf-4184-b85f-20be14d26dac", "name": "Design review"}
OTHER_ROOM = {"id": "room-two", "name": "Elsewhere"}
ADA = {"id": "user-001", "name": "Ada", "token": "never-in-a-workflow"}

EVERYTHING_IT_SEES = """export default async function(event, { store, room, files }) {
  return {
    room: await room.get(),
    users: await room.getUsers(),
    tasks: await store.getAll('tasks'),
    one: await store.get('tasks', 'task-1'),
    files: await files.list(),
  };
}"""


class Platform:
    def __init__(self, registry, producer, topics, fanout: Fanout, runner: Runner):
        self.registry, self.producer, self.topics = registry, producer, topics
        self.fanout, self.runner = fanout, runner

    async def workflow(self, account, name: str, events: list[str], code: str, **fields):
        r = self.registry
        body = {"name": name, "events": events, "code": code, **fields}
        resp = await r.http.post(
            f"{r.url}/v1/accounts/{account.id}/workflows", json=body, headers=account.auth()
        )
        assert resp.status == 201, await resp.text()
        workflow = (await resp.json())["data"]["workflow"]
        await self.indexed(workflow["id"], workflow["version"], enabled=workflow["enabled"])
        return workflow

    async def indexed(self, workflow_id: str, version: int, *, enabled: bool = True) -> None:
        async def held():
            entry = self.fanout.workflows.get(workflow_id)
            return entry is not None and entry.version == version and entry.enabled == enabled

        await eventually(held, timeout_s=15)

    async def patch(self, account, workflow: dict, **fields) -> dict:
        r = self.registry
        url = f"{r.url}/v1/accounts/{account.id}/workflows/{workflow['id']}"
        resp = await r.http.patch(url, json=fields, headers=account.auth())
        assert resp.status == 200, await resp.text()
        changed = (await resp.json())["data"]["workflow"]
        await self.indexed(changed["id"], changed["version"], enabled=changed["enabled"])
        return changed

    async def publish(self, event: dict) -> None:
        key = (event.get("room") or {}).get("id") or event["organization_id"]
        await self.producer.send_and_wait(
            self.topics.events, dumps(event), key=key.encode(), headers=JSON_HEADERS
        )

    async def put_state(self, key: str, value) -> None:
        await self.producer.send_and_wait(
            self.topics.room_state, None if value is None else dumps(value), key=key.encode()
        )

    async def executions(self, account, workflow: dict, at_least: int) -> list[dict]:
        r = self.registry
        url = f"{r.url}/v1/accounts/{account.id}/workflows/{workflow['id']}/executions"

        async def finished():
            body = await (await r.http.get(url, headers=account.auth())).json()
            done = [e for e in body["data"]["executions"] if e["status"] != "running"]
            return done if len(done) >= at_least else None

        return await eventually(finished, timeout_s=30, interval_s=0.2)


@pytest.fixture
async def platform(
    registry, producer, topics, kafka_settings, postgres_settings
) -> AsyncIterator[Platform]:
    relay = asyncio.create_task(registry.relay.run())
    fanout = Fanout(FanoutSettings(kafka=kafka_settings, postgres=postgres_settings, health_port=0))
    await fanout.start()
    serving = asyncio.create_task(fanout.run_until_stopped())
    runner = Runner(
        RunnerSettings(
            postgres=postgres_settings,
            kafka=kafka_settings,
            health_port=0,
            max_hosts=4,
            allow_loopback=False,
            allowed_networks=["127.0.0.2/32"],  # the Slack stand-in, and nothing else local
        )
    )
    await runner.start()
    try:
        yield Platform(registry, producer, topics, fanout, runner)
    finally:
        await runner.stop()
        fanout.stop()
        await serving
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay


def event(name: str, org: str, **payload) -> dict:
    return build_event(event=name, organization_id=org, now=datetime.now(UTC), **payload)


async def test_log_new_participants_runs_as_in_001_and_follows_enabled(platform, registry):
    alice = registry.alice
    workflow = await platform.workflow(
        alice, "Log new participants", ["participant.joined", "participant.left"],
        LOG_NEW_PARTICIPANTS,
    )  # fmt: skip
    await platform.publish(event("participant.joined", alice.id, room=ROOM, user=ADA))
    [execution] = await platform.executions(alice, workflow, at_least=1)
    assert execution["status"] == "success", execution
    assert execution["result"] == {"logged": True}
    assert execution["version"] == 1 and execution["event"] == "participant.joined"
    messages = [entry["message"] for entry in execution["logs"]]
    assert "[participant.joined] User user-001 in room Design review" in messages
    assert execution["duration_ms"] is not None and execution["started_at"]

    await platform.patch(alice, workflow, enabled=False)
    await platform.publish(event("participant.left", alice.id, room=ROOM, user=ADA))
    await asyncio.sleep(2)  # give a wrong run the time to show up before we count
    assert len(await platform.executions(alice, workflow, at_least=1)) == 1

    await platform.patch(alice, workflow, enabled=True)
    await platform.publish(event("participant.left", alice.id, room=ROOM, user=ADA))
    runs = await platform.executions(alice, workflow, at_least=2)
    assert len(runs) == 2 and runs[0]["event"] == "participant.left"


async def test_notify_slack_on_session_start_posts_to_the_stand_in(platform, registry):
    slack = Receiver(host="127.0.0.2")
    await slack.start()
    try:
        alice = registry.alice
        code = NOTIFY_SLACK.replace(
            "https://hooks.slack.com/services/YOUR/WEBHOOK/URL",
            slack.url("/services/YOUR/WEBHOOK/URL"),
        )
        workflow = await platform.workflow(alice, "Notify Slack", ["session.started"], code)
        await platform.publish(event("session.started", alice.id, room=ROOM))
        [execution] = await platform.executions(alice, workflow, at_least=1)
        assert execution["status"] == "success", execution
        assert execution["result"] == {"notified": True}
        [posted] = slack.received["/services/YOUR/WEBHOOK/URL"]
        assert json.loads(posted.body) == {
            "text": 'Collaboration session started in "Design review"'
        }
        assert any("-> 200" in e["message"] for e in execution["logs"])
    finally:
        await slack.stop()


async def test_auto_create_welcome_store_entry_reads_the_projected_store(platform, registry, pool):
    alice = registry.alice
    await platform.put_state(
        state_key(alice.id, ROOM["id"], "kv", "settings", "user-001"), {"theme": "dark"}
    )
    workflow = await platform.workflow(alice, "Welcome", ["user.created"], WELCOME_STORE_ENTRY)

    async def projected():
        return await pool.fetchval("SELECT count(*) FROM workflow.kv_entries") == 1

    await eventually(projected, timeout_s=15)
    await platform.publish(event("user.created", alice.id, room={"id": ROOM["id"]}, user=ADA))
    [execution] = await platform.executions(alice, workflow, at_least=1)
    assert execution["status"] == "success", execution
    assert execution["result"] == {"checked": True}
    [line] = [e["message"] for e in execution["logs"]]
    assert line.startswith("User settings:") and "dark" in line


async def test_bindings_see_only_their_own_room_and_organization(platform, registry, pool):
    alice, bob = registry.alice, registry.bob
    for org, room, task, path in (
        (alice.id, ROOM, "mine", "docs/mine.pdf"),
        (alice.id, OTHER_ROOM, "other-room", "docs/other-room.pdf"),
        (bob.id, ROOM, "other-account", "docs/other-account.pdf"),
    ):
        await platform.put_state(state_key(org, room["id"], "kv", "tasks", "task-1"), task)
        await platform.put_state(state_key(org, room["id"], "file", path), {"size": 1})
        await platform.publish(
            event("participant.joined", org, room=room, user={"id": f"u-{task}"})
        )

    async def projected():
        return await pool.fetchval("SELECT count(*) FROM workflow.kv_entries") == 3 and (
            await pool.fetchval("SELECT count(*) FROM workflow.room_users") == 3
        )

    await eventually(projected, timeout_s=20)
    workflow = await platform.workflow(alice, "Sees", ["session.started"], EVERYTHING_IT_SEES)
    await platform.publish(event("session.started", alice.id, room=ROOM))
    [execution] = await platform.executions(alice, workflow, at_least=1)
    assert execution["status"] == "success", execution
    assert execution["result"] == {
        "room": ROOM,
        "users": [{"id": "u-mine"}],
        "tasks": {"task-1": "mine"},
        "one": "mine",
        "files": [{"path": "docs/mine.pdf", "size": 1}],
    }


HOSTILE = {
    "spin": "export default async function() { await null; while (true) {} }",
    "metadata": """export default async function() {
  await fetch('http://169.254.169.254/latest/meta-data/');
}""",
    # Deno reached through a name the parser cannot see: the save-time check lets it through,
    # and the run says what to do instead of Deno's "run again with the --allow-env flag".
    "env": "export default async function() {\n"
    "  return globalThis['De' + 'no'].env.get('HOME');\n}",
}


async def test_hostile_workflows_are_recorded_and_others_keep_running(platform, registry):
    alice = registry.alice
    hostile = {
        name: await platform.workflow(alice, f"hostile {name}", ["session.started"], code)
        for name, code in HOSTILE.items()
    }
    benign = await platform.workflow(
        alice, "benign", ["session.started"], LOG_NEW_PARTICIPANTS.replace(
            "event.data.userId", "'nobody'"
        ),
    )  # fmt: skip
    await platform.publish(event("session.started", alice.id, room=ROOM))
    [ok] = await platform.executions(alice, benign, at_least=1)
    assert ok["status"] == "success" and ok["result"] == {"logged": True}
    [spin] = await platform.executions(alice, hostile["spin"], at_least=1)
    assert spin["status"] == "timeout"
    [metadata] = await platform.executions(alice, hostile["metadata"], at_least=1)
    assert metadata["status"] == "error"
    assert any("169.254.169.254" in e["message"] for e in metadata["logs"])
    [env] = await platform.executions(alice, hostile["env"], at_least=1)
    assert env["status"] == "error"
    assert env["error"]["message"].startswith("environment variables are not available")
    assert "--allow" not in env["error"]["message"]


async def test_a_run_fetched_after_a_slow_one_is_not_held_behind_it(platform, registry):
    """Runs flow: a run fetched while another waits on its wall time starts at once and is
    recorded while the slow one still runs (the runner used to end each fetched batch first)."""
    alice, r = registry.alice, registry
    slow = await platform.workflow(
        alice, "slow", ["session.started"], "export default async () => new Promise(() => {});"
    )
    fast = await platform.workflow(alice, "fast", ["participant.joined"], LOG_NEW_PARTICIPANTS)

    async def rows(workflow: dict) -> list[dict]:
        url = f"{r.url}/v1/accounts/{alice.id}/workflows/{workflow['id']}/executions"
        return (await (await r.http.get(url, headers=alice.auth())).json())["data"]["executions"]

    await platform.publish(event("session.started", alice.id, room=ROOM))
    await eventually(lambda: rows(slow), timeout_s=30, interval_s=0.1)  # fetched, under way
    await platform.publish(event("participant.joined", alice.id, room=ROOM, user=ADA))
    [done] = await platform.executions(alice, fast, at_least=1)
    [still] = await rows(slow)
    assert done["status"] == "success" and still["status"] == "running"
    [slow_done] = await platform.executions(alice, slow, at_least=1)
    assert slow_done["status"] == "timeout"


async def test_a_started_runner_keeps_what_it_built_out_of_full_collections(
    postgres_settings, kafka_settings
):
    """A full collection walks every tracked object: frozen at start, the runner's modules and
    clients are not walked again (one such pass stalled the event loop 61 ms in the sandbox
    scenario)."""
    gc.unfreeze()
    runner = Runner(RunnerSettings(postgres=postgres_settings, kafka=kafka_settings,
                                   health_port=0, max_hosts=1))  # fmt: skip
    await runner.start()
    try:
        assert gc.get_freeze_count() > 10_000
    finally:
        await runner.stop()


HOSTILE_OUTPUT = {
    "benign": "export default async function() { return { ok: true }; }",
    "returns NUL": 'export default async function() { return "x\\u0000y"; }',
    "logs NUL": """export default async function() {
  console.log("a\\u0000b");
  console.log("lone \\ud800");
  throw new Error("bad\\u0000");
}""",
    "1 MB": """export default async function() {
  console.log("y".repeat(1 << 20));
  return "x".repeat(1 << 20);
}""",
}


async def test_runs_that_return_or_log_nul_or_1_mb_are_recorded_once_beside_benign_ones(
    platform, registry
):
    """A result or log Postgres cannot take as it is is stored escaped; one past the caps is
    capped. Every run of every workflow reaches its final status once (the runner used to
    run the NUL-returning one again and again, and the benign one beside it starved)."""
    alice, events = registry.alice, 8
    workflows = {
        name: await platform.workflow(alice, name, ["session.started"], code)
        for name, code in HOSTILE_OUTPUT.items()
    }
    for _ in range(events):
        await platform.publish(event("session.started", alice.id, room=ROOM))
    runs = {
        name: await platform.executions(alice, workflow, at_least=events)
        for name, workflow in workflows.items()
    }
    assert {name: len(done) for name, done in runs.items()} == dict.fromkeys(runs, events)
    assert {run["result"]["ok"] for run in runs["benign"]} == {True}
    assert {(run["status"], run["result"]) for run in runs["returns NUL"]} == {
        ("success", "x\\u0000y")
    }
    for run in runs["logs NUL"]:
        assert run["status"] == "error" and run["error"]["message"].startswith("bad\\u0000")
        # Deno's socket writes a lone surrogate as U+FFFD; one that arrives is escaped.
        [nul, lone] = [e["message"] for e in run["logs"]]
        assert nul == "a\\u0000b" and lone in ("lone \ufffd", "lone \\ud800")
    for run in runs["1 MB"]:
        assert run["status"] == "error" and "result too large" in run["error"]["message"]
        [line, *_] = run["logs"]
        assert line["message"].endswith("[truncated]") and len(line["message"]) <= 64 * 1024
    metrics = platform.runner.metrics_registry
    finished = sum(
        metrics.get_sample_value("roomhooks_workflow_executions_total", {"status": s}) or 0
        for s in ("success", "error", "timeout")
    )
    assert finished == events * len(workflows)  # each run recorded once, none run again


async def test_events_with_users_5_or_nul_in_a_name_do_not_stop_the_projection(
    platform, registry, pool, producer, topics
):
    """A wrongly shaped part of an event is passed over and counted once, a NUL is stored
    escaped, a record that is not JSON is skipped: the events after them are projected (a
    `"users": 5` used to fail the projection's batch on every try)."""
    alice = registry.alice
    wrong_shape = event("participant.joined", alice.id, room=ROOM, user=ADA)
    wrong_shape["users"] = 5
    grace = {"id": "u-nul", "name": "Gr\x00ace"}
    nul_name = event("participant.joined", alice.id, room=ROOM, user=grace)
    after = event("participant.joined", alice.id, room=ROOM, user={"id": "u-after"})
    await platform.publish(wrong_shape)
    await platform.publish(nul_name)
    await producer.send_and_wait(topics.events, b"{not json", key=ROOM["id"].encode())
    await platform.publish(after)

    async def projected():
        rows = await pool.fetch("SELECT user_id, data FROM workflow.room_users ORDER BY user_id")
        return {r["user_id"]: r["data"] for r in rows} if len(rows) == 3 else None

    users = await eventually(projected, timeout_s=20)
    assert users == {
        "u-after": {"id": "u-after"},
        "u-nul": {"id": "u-nul", "name": "Gr\\u0000ace"},
        "user-001": {"id": "user-001", "name": "Ada"},
    }
    metrics = platform.runner.metrics_registry

    def poison(kind: str) -> float | None:
        labels = {"service": "workflow_runner", "kind": kind}
        return metrics.get_sample_value("roomhooks_poison_inputs_total", labels)

    async def counted() -> bool:
        return poison("projection_event") == 1 and poison("projection_record") == 1

    await eventually(counted)


async def test_malformed_run_requests_go_to_the_dlq_once_and_the_runs_after_them_go_on(
    platform, registry, producer, topics, kafka_settings
):
    alice = registry.alice
    benign = HOSTILE_OUTPUT["benign"]
    workflow = await platform.workflow(alice, "after", ["session.started"], benign)
    key = workflow["id"].encode()  # one partition: the good run comes after the bad ones
    good = tenant_run(workflow, "evt-good")
    bad = [
        b"not json",
        good.model_dump_json().replace(good.run_id, "run-1").encode(),
        good.model_dump_json().replace('"evt-good"', '"evt\\u0000"').encode(),
    ]
    for value in bad:
        await producer.send_and_wait(topics.workflow_runs, value, key=key)
    await producer.send_and_wait(topics.workflow_runs, good.model_dump_json().encode(), key=key)
    [run] = await platform.executions(alice, workflow, at_least=1)
    assert run["status"] == "success" and run["id"] == good.run_id

    dead = await read_topic(kafka_settings, topics.workflow_runs_dlq, at_least=len(bad))
    assert [record.value for record in dead] == bad  # each once, as it came
    reasons = [record.headers["rh-error"].decode() for record in dead]
    assert reasons[0].startswith("invalid run request: Invalid JSON")
    assert reasons[1].startswith("invalid run request: run_id: String should match pattern")
    assert reasons[2].startswith("invalid run request: event_id: Value error, holds U+0000")
    assert {record.headers["rh-topic"].decode() for record in dead} == {topics.workflow_runs}
    labels = {"service": "workflow_runner", "kind": "run_request"}
    poison = platform.runner.metrics_registry.get_sample_value(
        "roomhooks_poison_inputs_total", labels
    )
    assert poison == len(bad)


def tenant_run(workflow: dict, event_id: str) -> WorkflowRunRequested:
    payload = event("session.started", workflow["organization_id"], room=ROOM)
    return WorkflowRunRequested(
        run_id=run_id_for(workflow["id"], event_id),
        workflow_id=workflow["id"],
        version=workflow["version"],
        organization_id=workflow["organization_id"],
        room_id=ROOM["id"],
        event_id=event_id,
        event=payload,
        created_at=datetime.now(UTC),
    )


async def test_readyz_is_red_while_the_projection_retries_one_batch_and_green_once_it_passes(
    postgres_settings, kafka_settings, pool, producer, topics
):
    """Postgres refusing for its own sake (here: the table is away) is not the events' fault:
    the batch is tried again with a back-off, /readyz says so past the retry limit, and once
    Postgres takes it again the batch is projected, nothing set aside."""
    port = free_port()
    runner = Runner(
        RunnerSettings(postgres=postgres_settings, kafka=kafka_settings, health_port=port,
                       max_hosts=1, retry_limit=1, retry_backoff_max_s=0.5)
    )  # fmt: skip
    await runner.start()
    try:
        await pool.execute("ALTER TABLE workflow.room_users RENAME TO room_users_away")
        org = "org-readiness"
        await producer.send_and_wait(
            topics.events,
            dumps(event("participant.joined", org, room=ROOM, user=ADA)),
            key=ROOM["id"].encode(),
        )

        checks = await eventually(
            lambda: readiness(port, lambda c: c["projection"] != "ok"), timeout_s=20
        )
        assert checks["projection"].startswith("projection batch failed")
        assert "room_users" in checks["projection"]
        await pool.execute("ALTER TABLE workflow.room_users_away RENAME TO room_users")
        await eventually(lambda: readiness(port, lambda c: c["projection"] == "ok"), timeout_s=20)
        assert await pool.fetchval(
            "SELECT data FROM workflow.room_users WHERE organization_id = $1", org
        ) == {"id": "user-001", "name": "Ada"}
        labels = {"service": "workflow_runner", "kind": "projection_row"}
        assert runner.metrics_registry.get_sample_value(
            "roomhooks_poison_inputs_total", labels
        ) in (None, 0)
    finally:
        await runner.stop()


async def test_readyz_is_red_while_a_run_is_retried_and_the_run_is_recorded_once_after(
    registry, postgres_settings, kafka_settings, pool, producer, topics
):
    """A run failing for Postgres' sake (the table is away) is tried again with a back-off,
    not recorded as failed; /readyz names it past the retry limit; once Postgres is back the
    run is recorded once."""
    alice = registry.alice
    resp = await registry.http.post(
        f"{registry.url}/v1/accounts/{alice.id}/workflows",
        json={"name": "w", "events": ["session.started"], "code": HOSTILE_OUTPUT["benign"]},
        headers=alice.auth(),
    )
    assert resp.status == 201, await resp.text()
    workflow = (await resp.json())["data"]["workflow"]
    port = free_port()
    runner = Runner(
        RunnerSettings(postgres=postgres_settings, kafka=kafka_settings, health_port=port,
                       max_hosts=1, retry_limit=1, retry_backoff_max_s=0.5)
    )  # fmt: skip
    await runner.start()
    try:
        await pool.execute("ALTER TABLE workflow.executions RENAME TO executions_away")
        run = tenant_run(workflow, "evt-retried")
        await producer.send_and_wait(
            topics.workflow_runs, run.model_dump_json().encode(), key=workflow["id"].encode()
        )
        checks = await eventually(lambda: readiness(port, lambda c: c["runs_retry"] != "ok"))
        assert checks["runs_retry"].startswith(f"run {run.run_id} failed")
        await pool.execute("ALTER TABLE workflow.executions_away RENAME TO executions")

        async def recorded():
            return await pool.fetchval(
                "SELECT status FROM workflow.executions WHERE id = $1 AND status <> 'running'",
                uuid.UUID(run.run_id),
            )

        assert await eventually(recorded, timeout_s=20) == "success"
        await eventually(lambda: readiness(port, lambda c: c["runs_retry"] == "ok"))
        metrics = runner.metrics_registry
        labels = {"status": "success"}
        assert metrics.get_sample_value("roomhooks_workflow_executions_total", labels) == 1
        poison = metrics.get_sample_value(
            "roomhooks_poison_inputs_total", {"service": "workflow_runner", "kind": "run_input"}
        )
        assert poison is None
    finally:
        await runner.stop()


async def readiness(port: int, wanted) -> dict | None:
    """The runner's /readyz checks when `wanted(checks)` holds, else None."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/readyz") as resp,
    ):
        checks = (await resp.json())["checks"]
    return checks if wanted(checks) else None
