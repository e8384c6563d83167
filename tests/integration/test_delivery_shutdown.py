"""SIGTERM to a delivery process under load: in-flight attempts finish within the grace
period and are recorded, those that cannot are released and retried by the next start, the
process exits 0, and no delivery is lost."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest

from tests.support.deliveries import create_webhook, request_deliveries, statuses
from tests.support.polling import eventually
from tests.support.processes import ServiceProcess, delivery_process
from tests.support.receiver import Receiver, Script

pytestmark = pytest.mark.integration

GRACE_S = 4.0
QUICK = 40  # answered after 1 s: the ones in flight at SIGTERM finish within the grace
SLOW = 6  # answered after 8 s: in flight at SIGTERM, they cannot finish and are released


def log_events(process: ServiceProcess) -> list[dict]:
    lines = (line for line in process.log_text().splitlines() if line.startswith("{"))
    return [json.loads(line) for line in lines]


async def test_sigterm_finishes_in_flight_attempts_releases_the_rest_and_exits_0(
    registry, producer, topics, pool, database_url, broker, kafka_settings, tmp_path
):
    receiver = Receiver()
    await receiver.start()
    delivery = delivery_process(
        tmp_path,
        database_url=database_url,
        bootstrap=broker,
        namespace=kafka_settings.topic_namespace,
        ROOMHOOKS_DELIVERY_SHUTDOWN_GRACE_S=str(GRACE_S),
        ROOMHOOKS_DELIVERY_TIMEOUT_S="10",
        ROOMHOOKS_DELIVERY_LEASE_S="60",  # longer than the test: a lost lease would show
        ROOMHOOKS_DELIVERY_PER_WEBHOOK_CONCURRENCY="8",
    )
    try:
        hooks = {}
        for path, delay in (("/quick", 1.0), ("/slow", 8.0)):
            url = receiver.script(path, Script(statuses=[200], delay_s=delay))
            hooks[path] = await create_webhook(registry, url)
        quick = await request_deliveries(
            producer, topics.deliveries, hooks["/quick"], (f"q{i}" for i in range(QUICK))
        )
        slow = await request_deliveries(
            producer, topics.deliveries, hooks["/slow"], (f"s{i}" for i in range(SLOW))
        )
        delivery.start()

        async def both_in_flight():
            return len(receiver.received["/quick"]) >= 8 and len(receiver.received["/slow"]) == SLOW

        await eventually(both_in_flight, timeout_s=30)
        in_flight = {r.headers["webhook-id"] for r in receiver.received["/quick"]}
        in_flight -= {d for d, s in (await statuses(pool)).items() if s == "success"}
        assert in_flight, "no quick attempt was in flight at SIGTERM"
        sent_at = time.monotonic()
        delivery.terminate()

        async def exited():
            return delivery.returncode is not None

        await eventually(exited, timeout_s=GRACE_S + 10, interval_s=0.02)
        took = time.monotonic() - sent_at
        events = {e["event"]: e for e in log_events(delivery)}
        print(f"SIGTERM to exit: {took:.2f} s (grace {GRACE_S} s); {events['delivery.stopped']}")
        assert delivery.returncode == 0, delivery.log_text()[-3000:]
        assert "delivery.stopping" in events and "delivery.fetching_stopped" in events
        done = events["delivery.in_flight_done"]
        assert done["unfinished"] == SLOW  # the slow ones ran into the deadline

        # The attempts in flight at SIGTERM finished and were recorded before the exit.
        after_stop = await statuses(pool)
        assert all(after_stop[d] == "success" for d in in_flight), after_stop
        # Everything else was given back: pending, no lease, no attempt recorded. These are
        # the slow ones, and the quick ones admitted but not started (their lane was full).
        rows = await pool.fetch(
            "SELECT id::text, lease_until, attempts FROM delivery.deliveries"
            " WHERE status <> 'success'"
        )
        assert {(r["lease_until"], r["attempts"]) for r in rows} == {(None, 0)}
        assert set(slow) <= {r["id"] for r in rows}
        assert len(rows) == done["released"]

        receiver.scripts["/slow"].delay_s = 1.0  # the endpoint recovers
        delivery.start()

        async def all_succeeded():
            now = await statuses(pool)
            return len(now) == QUICK + SLOW and set(now.values()) == {"success"}

        await eventually(all_succeeded, timeout_s=60, interval_s=0.25)
        ids = Counter(r.headers["webhook-id"] for rs in receiver.received.values() for r in rs)
        assert set(ids) == set(quick) | set(slow)
        repeated = {d for d, n in ids.items() if n > 1}
        assert repeated >= set(slow)  # the released ones were sent again, same webhook-id
        print(f"released and sent again: {len(repeated)} of {QUICK + SLOW}")
    finally:
        delivery.stop()
        await receiver.stop()
