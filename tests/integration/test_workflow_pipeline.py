"""Workflows end to end: registry -> fanout -> runner -> Deno, with the guide's examples."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from services.fanout.app import Fanout
from services.fanout.settings import FanoutSettings
from services.workflow_runner.app import Runner
from services.workflow_runner.projection import state_key
from services.workflow_runner.settings import RunnerSettings
from shared.events import build_event
from shared.kafka import JSON_HEADERS, dumps
from tests.support.polling import eventually
from tests.support.receiver import Receiver
from tests.support.sandbox import LOG_NEW_PARTICIPANTS, NOTIFY_SLACK, WELCOME_STORE_ENTRY

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
    fanout = Fanout(FanoutSettings(kafka=kafka_settings, health_port=0))
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
    "env": "export default async function() { return Deno.env.get('HOME'); }",
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
    assert env["status"] == "error" and "env" in env["error"]["message"].lower()


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
    clients are not walked again (one such pass stalled the event loop 61 ms, scenario 10)."""
    gc.unfreeze()
    runner = Runner(RunnerSettings(postgres=postgres_settings, kafka=kafka_settings,
                                   health_port=0, max_hosts=1))  # fmt: skip
    await runner.start()
    try:
        assert gc.get_freeze_count() > 10_000
    finally:
        await runner.stop()
