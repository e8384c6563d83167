"""The broker or Postgres goes away under a running `roomhooks dev` stack: the services
carry on by themselves (same processes), and nothing published is lost."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from shared.db import with_database
from shared.kafka import Topics, ensure_topics
from shared.settings import KafkaSettings
from tests.support.kafka import read_topic
from tests.support.outages import (
    HEALTH_SETTINGS,
    SERVICES,
    event_producer,
    exit_codes,
    platform,
    publish,
    publish_when_accepted,
    readiness,
)
from tests.support.polling import eventually
from tests.support.processes import ServiceProcess, service_env
from tests.support.receiver import Script
from tests.support.servers import TansuServer, ThrowawayPostgres
from tests.support.services import free_port

pytestmark = pytest.mark.integration


async def test_services_carry_on_with_new_events_after_the_dev_broker_restarts(
    tmp_path: Path, database_url: str
) -> None:
    async with platform(tmp_path, database_url) as p:
        before = [f"before-{i}" for i in range(20)]
        async with event_producer(p.bootstrap) as producer:
            await publish(producer, p.account, before)

        async def delivered(ids: list[str]) -> bool:
            return set(ids) <= p.delivered()

        await eventually(lambda: delivered(before), timeout_s=30)
        processes = p.processes()
        pids = {name: proc.pid for name, proc in processes.items() if name != "broker"}

        processes["broker"].kill()  # the dev stack restarts it on the same port, empty
        killed_at = time.monotonic()
        await p.stack.wait_for_line(lambda line: "broker exited with code -9" in line, timeout_s=10)
        after = [f"after-{i}" for i in range(20)]
        await publish_when_accepted(p.bootstrap, p.account, after)
        await eventually(lambda: delivered(after), timeout_s=60, interval_s=0.2)
        print(f"new events delivered {time.monotonic() - killed_at:.1f} s after the kill")

        # Re-announced by the dev stack: a fanout (re)starting now would match the webhook.
        records = await read_topic(
            KafkaSettings(bootstrap_servers=p.bootstrap), Topics().registry, at_least=1
        )
        assert any(r.key and r.key.startswith(b"webhook:") for r in records)

        now = p.processes()
        assert {name: now[name].pid for name in pids} == pids  # no service restarted
        assert now["broker"].pid != processes["broker"].pid
        for name in p.health:
            checks = await eventually(lambda n=name: ready(p, n), timeout_s=30)
            assert checks.get("broker", "ok") == "ok", (name, checks)
    # The stack stopped every service with SIGTERM: each finished its batch and exited 0.
    assert exit_codes(p.stack) == dict.fromkeys(SERVICES, 0)


async def ready(p, service: str) -> dict | None:
    checks = await p.readiness(service)
    return checks if all_ok(checks) else None


def all_ok(checks: dict[str, str]) -> bool:
    return bool(checks) and all(v == "ok" for v in checks.values())


async def test_services_reconnect_by_themselves_after_postgres_restarts(tmp_path: Path) -> None:
    server = ThrowawayPostgres()
    try:
        server.start()
        database_url = with_database(server.url, "roomhooks")
        async with platform(tmp_path, database_url) as p:
            published: list[str] = []
            stop_publishing = asyncio.Event()

            async def steady_load() -> None:
                async with event_producer(p.bootstrap) as producer:
                    while not stop_publishing.is_set():
                        event_id = f"e{len(published)}"
                        await publish(producer, p.account, [event_id])
                        published.append(event_id)
                        await asyncio.sleep(0.02)

            load = asyncio.create_task(steady_load())

            async def published_at_least(n: int) -> bool:
                return len(published) >= n

            await eventually(lambda: published_at_least(50), timeout_s=30)
            pids = {name: proc.pid for name, proc in p.processes().items()}

            server.stop()
            down_at = len(published)
            for name in ("delivery", "workflow_runner"):
                await eventually(lambda n=name: postgres_down(p, n), timeout_s=30)
            # About 4 s down: past the recorder's longest back-off (see its module).
            await eventually(lambda: published_at_least(down_at + 150), timeout_s=60)
            server.start()
            up = time.monotonic()
            recovered = {}
            for name in ("delivery", "workflow_runner"):
                await eventually(lambda n=name: ready(p, n), timeout_s=60, interval_s=0.1)
                recovered[name] = round(time.monotonic() - up, 2)
            up_at = len(published)
            await eventually(lambda: published_at_least(up_at + 50), timeout_s=30)
            stop_publishing.set()
            await load

            await eventually(
                lambda: p.delivered_and_recorded(database_url, published),
                timeout_s=90,
                interval_s=0.5,
            )
            print(
                f"{len(published)} events, {down_at}..{up_at} published while Postgres was down;"
                f" ready again after the restart (s): {recovered}; all delivered and recorded"
                f" {time.monotonic() - up:.1f} s after it"
            )
            assert {name: proc.pid for name, proc in p.processes().items()} == pids
        assert exit_codes(p.stack) == dict.fromkeys(SERVICES, 0)
    finally:
        server.remove()


async def postgres_down(p, service: str) -> bool:
    checks = await p.readiness(service)
    return bool(checks) and checks.get("postgres") != "ok"


async def test_readiness_says_when_the_broker_is_gone_and_a_stop_meanwhile_exits_0(
    tmp_path: Path, database_url: str
) -> None:
    """aiokafka hides fetch errors (getmany returns nothing), so /readyz asks the broker; and a
    consumer's stop() during an outage can leak a CancelledError, which must not fail the exit."""
    broker = TansuServer(tmp_path / "tansu.log")
    broker.start()
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap, partitions=3)
    ports = {name: free_port() for name in HEALTH_SETTINGS}
    env = service_env(
        database_url=database_url,
        bootstrap=broker.bootstrap,
        namespace=kafka.topic_namespace,
        **{HEALTH_SETTINGS[name]: str(port) for name, port in ports.items()},
    )
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    services = {name: ServiceProcess(name, env, tmp_path) for name in HEALTH_SETTINGS}

    async def every(wanted) -> bool:
        # Each service's checks in the failure when one never gets there: which, and how far.
        checks = {name: await readiness(url) for name, url in urls.items()}
        assert all(wanted(answer) for answer in checks.values()), checks
        return True

    try:
        await ensure_topics(kafka)
        for service in services.values():
            service.start()
        await eventually(lambda: every(all_ok), timeout_s=60, interval_s=0.2)

        broker.stop()
        gone = lambda checks: checks.get("broker") == "unreachable"  # noqa: E731
        await eventually(lambda: every(gone), timeout_s=30, interval_s=0.2)

        broker.start()  # the same port, no topics: what the dev stack's hook re-creates
        missing = lambda checks: checks.get("broker", "").startswith("missing topics")  # noqa: E731
        await eventually(lambda: every(missing), timeout_s=30, interval_s=0.2)
        await ensure_topics(kafka)
        await eventually(lambda: every(all_ok), timeout_s=60, interval_s=0.2)

        broker.stop()
        await eventually(lambda: every(gone), timeout_s=30, interval_s=0.2)
        for service in services.values():
            service.terminate()

        async def all_exited() -> bool:
            return all(s.returncode is not None for s in services.values())

        await eventually(all_exited, timeout_s=60, interval_s=0.1)
        for name, service in services.items():
            log = service.log_text()
            assert service.returncode == 0, (name, log[-3000:])
            assert "Traceback" not in log, (name, log[-3000:])
    finally:
        for service in services.values():
            service.stop()
        broker.stop()


async def test_sigterm_to_delivery_while_postgres_is_down_exits_0_and_loses_nothing(
    tmp_path: Path,
) -> None:
    """Attempts end but cannot be recorded, nor released: the process still exits 0 within
    its grace period, and their leases bring them back once Postgres is."""
    server = ThrowawayPostgres()
    try:
        server.start()
        database_url = with_database(server.url, "roomhooks")
        async with platform(
            tmp_path,
            database_url,
            ROOMHOOKS_DELIVERY_TIMEOUT_S="4",
            ROOMHOOKS_DELIVERY_LEASE_S="5",
            ROOMHOOKS_DELIVERY_SHUTDOWN_GRACE_S="10",
        ) as p:
            p.receiver.script("/hook", Script(delay_s=1.5))
            events = [f"e{i}" for i in range(30)]
            async with event_producer(p.bootstrap) as producer:
                await publish(producer, p.account, events)

            async def in_flight() -> bool:
                return len(p.receiver.received["/hook"]) >= 5

            await eventually(in_flight, timeout_s=30)
            server.stop()
            p.processes()["delivery"].terminate()
            sent_at = time.monotonic()
            await p.stack.wait_for_line(
                lambda line: "delivery exited with code 0" in line, timeout_s=40
            )
            print(f"SIGTERM to exit with Postgres down: {time.monotonic() - sent_at:.1f} s")
            server.start()  # the dev stack has restarted delivery meanwhile

            await eventually(
                lambda: p.delivered_and_recorded(database_url, events),
                timeout_s=90,
                interval_s=0.5,
            )
    finally:
        server.remove()
