"""After a realistic run, no webhook secret and no API key is anywhere it must not be.

The four services run as processes (DEBUG logs, JSON lines); keys come from the CLI; webhooks
and a workflow are created through the API; events flow; deliveries succeed, retry, fail and
are disabled by a 410; one is redelivered and a test ping sent; bad input reaches the DLQ.
Then every place a secret could leak is searched for every spelling of every secret
(tests/support/leaks.py): every log line the services and the CLI wrote, every record of
every topic of the run (keys, values, headers; the DLQ too), every API answer but the
creating 201s (and the CLI's printing of the key it made), everything the receiver got,
and every column of every table but the sealed secret and the API key's SHA-256.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp
import asyncpg
import pytest

from shared.events import build_event
from shared.kafka import JSON_HEADERS, Topics, dumps, make_producer
from shared.settings import KafkaSettings
from tests.support.devstack import run_cli
from tests.support.kafka import read_namespace
from tests.support.leaks import (
    Needles,
    api_key_spellings,
    database_rows,
    webhook_secret_spellings,
)
from tests.support.polling import eventually
from tests.support.processes import ServiceProcess, service_env
from tests.support.receiver import Script
from tests.support.services import free_port

pytestmark = pytest.mark.integration

SERVICES = ("registry", "fanout", "delivery", "workflow_runner")
ROOM = {"id": "room-scan-1", "name": "Design review"}
EVENTS = 5  # published by a producer; one more through `roomhooks publish`
# What is meant to hold a secret's trace: the sealed secret, the key's digest.
SCHEMAS = ("registry", "delivery", "workflow")
NOT_SCANNED = {
    ("registry", "webhooks", "secret_ciphertext"),
    ("registry", "api_keys", "token_sha256"),
}
WORKFLOW = (
    "export default async function(event, { room }) {\n"
    "  const r = await room.get();\n"
    "  console.log(`seen ${event.event} in ${r ? r.name : '?'}`, JSON.stringify(event));\n"
    "  return { seen: event.id };\n"
    "}"
)


@dataclass
class Api:
    """The registry over HTTP; every answer kept for the scan, the creating ones apart."""

    base: str
    http: aiohttp.ClientSession
    answers: list[tuple[str, str]] = field(default_factory=list)
    creations: list[str] = field(default_factory=list)

    async def call(
        self, method: str, path: str, token: str | None = None, *, base: str = "", **kwargs
    ) -> dict:
        """The answer's JSON, its status and its text; `base` another server (a probe)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        url = (base or self.base) + path
        async with self.http.request(method, url, headers=headers, **kwargs) as resp:
            text = await resp.text()
            shown = f"{method} {url} -> {resp.status}\n{dict(resp.headers)}\n{text}"
            if method == "POST" and resp.status == 201:
                self.creations.append(shown)
            else:
                self.answers.append((f"{method} {url} {resp.status}", shown))
            answer = json.loads(text) if text.startswith("{") else {}
            return {"status": resp.status, "text": text, **answer}


async def read_everything(
    api: Api, account: str, tokens: tuple[str, ...], webhooks: dict[str, dict], workflow_id: str
) -> None:
    """Every GET of the API on the run's webhooks, deliveries, workflow and executions."""
    hooks = f"/v1/accounts/{account}/webhooks"
    flow = f"/v1/accounts/{account}/workflows/{workflow_id}"
    for token in tokens:
        await api.call("GET", f"{hooks}?limit=100", token)
        for webhook in webhooks.values():
            one = f"{hooks}/{webhook['id']}"
            await api.call("GET", one, token)
            page = await api.call("GET", f"{one}/deliveries?limit=100", token)
            for delivery in (page.get("data") or {}).get("deliveries", []):
                await api.call("GET", f"{one}/deliveries/{delivery['id']}", token)
        await api.call("GET", f"/v1/accounts/{account}/workflows", token)
        await api.call("GET", flow, token)
        runs = await api.call("GET", f"{flow}/executions?limit=100", token)
        for execution in runs["data"]["executions"]:
            await api.call("GET", f"{flow}/executions/{execution['id']}", token)
    for path in ("/v1/event-types", "/healthz", "/readyz", "/metrics", "/openapi.json"):
        await api.call("GET", path)


async def cli(env: dict[str, str], *args: str) -> tuple[str, str]:
    """(stdout, stderr) of a successful `roomhooks <args>`."""
    done = await run_cli(*args, env=env)
    assert done.process.returncode == 0, done.output()
    return "\n".join(done.stdout), "\n".join(done.stderr)


async def publish(producer, topics: Topics, account: str, n: int) -> None:
    user = {"id": f"user-{n}", "name": "Ada", "token": f"room-token-{n}"}
    event = build_event(
        event="participant.joined",
        organization_id=account,
        room=ROOM,
        user=user,
        now=datetime.now(UTC),
    )
    await producer.send_and_wait(
        topics.events, dumps(event), key=ROOM["id"].encode(), headers=JSON_HEADERS
    )


async def test_no_secret_or_api_key_leaks_anywhere_after_a_full_run(
    database_url, broker, kafka_settings: KafkaSettings, cli_env, receiver, tmp_path
):
    topics = Topics.from_settings(kafka_settings)
    port, fanout_port = free_port(), free_port()
    fanout_probe = f"http://127.0.0.1:{fanout_port}"
    env = service_env(
        database_url=database_url,
        bootstrap=broker,
        namespace=kafka_settings.topic_namespace,
        ROOMHOOKS_LOG_LEVEL="DEBUG",
        ROOMHOOKS_REGISTRY_PORT=str(port),
        ROOMHOOKS_FANOUT_HEALTH_PORT=str(fanout_port),
        ROOMHOOKS_FANOUT_POLL_TIMEOUT_MS="100",
        ROOMHOOKS_DELIVERY_HEALTH_PORT="0",
        ROOMHOOKS_DELIVERY_RETRY_SCHEDULE="0.2,0.2",
        ROOMHOOKS_DELIVERY_SCHEDULER_INTERVAL_S="0.1",
        ROOMHOOKS_DELIVERY_SHUTDOWN_GRACE_S="5",
        ROOMHOOKS_WORKFLOWS_HEALTH_PORT="0",
        ROOMHOOKS_WORKFLOWS_MAX_HOSTS="2",
    )
    processes = [ServiceProcess(name, env, tmp_path) for name in SERVICES]
    cli_env = {**cli_env, "ROOMHOOKS_LOG_LEVEL": "DEBUG"}
    cli_logs: list[str] = []
    needles = Needles()
    producer = make_producer(kafka_settings)
    await producer.start()
    try:
        for process in processes:
            process.start()

        # --- keys from the CLI --------------------------------------------------------------
        (alice, log_a), (bob, log_b) = await asyncio.gather(
            cli(cli_env, "accounts", "create", "--name", "alice"),
            cli(cli_env, "accounts", "create", "--name", "bob"),
        )
        minted = await asyncio.gather(
            *(
                cli(cli_env, "keys", "create", "--account", account, "--role", role)
                for account, role in ((alice, "OWNER"), (alice, "MEMBER"), (bob, "OWNER"))
            )
        )
        (owner, _), (member, _), (bob_owner, _) = minted
        cli_logs += [log_a, log_b, *(stderr for _, stderr in minted)]
        key_printouts = [stdout for stdout, _ in minted]
        for label, token in (
            ("alice OWNER key", owner),
            ("alice MEMBER key", member),
            ("bob OWNER key", bob_owner),
        ):
            needles.add(label, api_key_spellings(token))

        async with aiohttp.ClientSession() as http:
            api = Api(f"http://127.0.0.1:{port}", http)

            async def ready() -> bool:
                for process in processes:
                    assert process.alive(), f"{process.name} exited\n{process.log_text()}"
                try:
                    return (await api.call("GET", "/readyz"))["status"] == 200
                except aiohttp.ClientError:
                    return False

            await eventually(ready, timeout_s=30, interval_s=0.2)

            # --- webhooks and a workflow through the API ----------------------------------
            hooks = f"/v1/accounts/{alice}/webhooks"
            created = {}
            plan = {
                "org": ([200], ["webhook.created"], None),
                "ok": ([200], ["participant.joined"], ROOM["id"]),
                "flaky": ([500, 200], ["participant.joined"], ROOM["id"]),
                "down": ([500], ["participant.joined"], None),
                "gone": ([410], ["participant.joined"], ROOM["id"]),
            }
            for name, (statuses, events, room_id) in plan.items():
                url = receiver.script(f"/{name}", Script(statuses=statuses))
                body = {"url": url, "events": events, "name": name}
                if room_id:
                    body["roomId"] = room_id
                answer = await api.call("POST", hooks, owner, json=body)
                assert answer["status"] == 201, answer
                created[name] = answer["data"]["webhook"]
                needles.add(f"secret of {name}", webhook_secret_spellings(created[name]["secret"]))
            answer = await api.call(
                "POST",
                f"/v1/accounts/{alice}/workflows",
                owner,
                json={"name": "scan", "events": ["participant.joined"], "code": WORKFLOW},
            )
            assert answer["status"] == 201, answer
            workflow = answer["data"]["workflow"]

            # --- events, good and bad -----------------------------------------------------
            async def indexed() -> bool:
                # Fanout reads registry changes apart from events: an event published before
                # it has read a new webhook would not match it. Its gauges say when it has.
                metrics = (await api.call("GET", "/metrics", base=fanout_probe))["text"]
                webhooks = f'roomhooks_fanout_index_webhooks{{state="enabled"}} {len(plan)}.0'
                workflows = 'roomhooks_fanout_index_workflows{state="enabled"} 1.0'
                return webhooks in metrics and workflows in metrics

            await eventually(indexed, timeout_s=20, interval_s=0.2)
            for n in range(EVENTS):
                await publish(producer, topics, alice, n)
            stdout, stderr = await cli(
                cli_env, "publish", "--account", alice, "--event", "participant.joined",
                "--room", json.dumps(ROOM), "--user", '{"id": "u-cli", "token": "cli-token"}',
            )  # fmt: skip
            cli_logs += [stdout, stderr]
            for bad in (b"not json", b'{"id": 1, "event": "participant.joined"}'):
                await producer.send_and_wait(topics.events, bad, key=b"bad")

            per_hook = EVENTS + 1
            expected = 3 * per_hook + 1  # ok, flaky, down; gone takes the first, then holds

            async def settled() -> bool:
                # Held (pending, no next attempt): the deliveries gone's 410 disabled it for.
                rows = await _fetch(
                    database_url,
                    "SELECT status, count(*) AS n FROM delivery.deliveries"
                    " WHERE event = 'participant.joined'"
                    " AND NOT (status = 'pending' AND next_attempt_at IS NULL) GROUP BY status",
                )
                counts = {r["status"]: r["n"] for r in rows}
                executions = await _count(
                    database_url,
                    "SELECT count(*) FROM workflow.executions WHERE status <> 'running'",
                )
                state = f"deliveries {counts}, {executions} executions ended"
                assert counts.get("pending", 0) == 0, state
                assert sum(counts.values()) >= expected and executions == per_hook, state
                return True

            await eventually(settled, timeout_s=30, interval_s=0.2)

            # --- redeliver a failure, ping, change and delete -----------------------------
            down_url = f"{hooks}/{created['down']['id']}"
            listed = await api.call("GET", f"{down_url}/deliveries?limit=100", owner)
            failed = listed["data"]["deliveries"][0]
            assert failed["status"] == "failed", failed
            answer = await api.call(
                "POST", f"{down_url}/deliveries/{failed['id']}/redeliver", owner
            )
            assert answer["status"] == 202, answer
            answer = await api.call("POST", f"{hooks}/{created['ok']['id']}/test", owner)
            assert answer["status"] == 202, answer

            async def redelivered_and_pinged() -> bool:
                attempts = await _count(
                    database_url,
                    "SELECT attempts FROM delivery.deliveries WHERE id = $1",
                    uuid.UUID(failed["id"]),
                )
                pinged = await _count(
                    database_url,
                    "SELECT count(*) FROM delivery.deliveries"
                    " WHERE event = 'webhook.test' AND status = 'success'",
                )
                assert attempts == 4 and pinged == 1, f"{attempts} attempts, {pinged} pinged"
                return True

            await eventually(redelivered_and_pinged, timeout_s=20, interval_s=0.2)
            org = {"url": receiver.url("/org"), "events": ["webhook.created"]}
            await api.call("PUT", f"{hooks}/{created['org']['id']}", owner, json=org)
            await api.call("PATCH", f"{hooks}/{created['ok']['id']}", owner, json={"name": "r"})
            await api.call("DELETE", f"{hooks}/{created['flaky']['id']}", owner)

            # --- every read the API offers, with every key, and some refusals -------------
            await read_everything(api, alice, (owner, member), created, workflow["id"])
            ok_url = f"{hooks}/{created['ok']['id']}"
            await api.call("GET", ok_url, bob_owner)  # another account's key
            await api.call("GET", ok_url, "rhk_" + "x" * 43)  # no such key
            await api.call("GET", ok_url, owner[:-1])  # a key one character short
            await api.call("POST", hooks, member, json={"url": receiver.url("/m"), "events": []})
    finally:
        await producer.stop()
        for process in processes:
            await asyncio.to_thread(process.stop)

    # --- the sources ---------------------------------------------------------------------
    sources: dict[str, str | bytes] = {}
    for process in processes:
        sources[f"log of {process.name}"] = process.log_text()
    for n, text in enumerate(cli_logs):
        sources[f"CLI log {n}"] = text
    for n, (name, answer) in enumerate(api.answers):
        sources[f"API #{n} {name}"] = answer
    for path, requests in receiver.received.items():
        for n, got in enumerate(requests):
            sources[f"received {path} #{n}"] = f"{got.headers}\n".encode() + got.body
    records = await read_namespace(kafka_settings)
    for topic, found in records.items():
        for n, record in enumerate(found):
            parts = [record.key or b"", record.value or b""]
            parts += [k.encode() + b"=" + v for k, v in record.headers.items()]
            sources[f"{topic} #{n}"] = b"\n".join(parts)
    rows = await database_rows(database_url, SCHEMAS, skip=NOT_SCANNED)
    sources.update(rows)
    sealed = await _fetch(database_url, "SELECT secret_ciphertext FROM registry.webhooks")
    assert sealed and all(r["secret_ciphertext"] for r in sealed)

    # --- the scan was worth doing -------------------------------------------------------
    logs = "".join(process.log_text() for process in processes)
    for event in (
        "webhook.created",
        "delivery.attempted",
        "delivery.redeliver",
        "webhook.disabled",
    ):
        assert f'"{event}"' in logs, f"no {event} line: the run was not what this test needs"
    assert records[topics.events_dlq] and records[topics.deliveries] and records[topics.registry]
    assert records[topics.registry_commands]  # the 410's order to disable
    assert any(key.startswith("delivery.delivery_attempts") for key in rows)
    assert len(api.answers) > 60
    # The matcher finds every secret where it is meant to be: in its 201 and printed key.
    in_creations = {label for text in api.creations for label, _ in needles.find(text)}
    assert in_creations == {f"secret of {name}" for name in created}
    in_printouts = {label for text in key_printouts for label, _ in needles.find(text)}
    assert in_printouts == {"alice OWNER key", "alice MEMBER key", "bob OWNER key"}

    # --- nothing anywhere else ------------------------------------------------------------
    leaks = {
        where: sorted({label for label, _ in found})
        for where, haystack in sources.items()
        if (found := needles.find(haystack))
    }
    assert leaks == {}, f"secrets found in {len(leaks)} places (of {len(sources)}): {leaks}"
    print(f"scanned {len(sources)} places, {sum(map(len, sources.values())):,} characters")


async def _fetch(url: str, query: str, *args) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def _count(url: str, query: str, *args) -> int:
    rows = await _fetch(url, query, *args)
    return rows[0][0] if rows else 0
