"""The delivery backlog bench's pure parts: the requests it writes and the rows it reports."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from shared.messages import delivery_id_for
from tests.bench import report
from tests.bench.delivery_backlog import backlog_requests
from tests.bench.load import Target
from tests.bench.pipeline import Workload


def _workload(webhooks: int) -> Workload:
    targets = [Target(str(uuid.uuid4()), f"room-{n}") for n in range(webhooks)]
    secrets = {str(uuid.uuid4()): f"whsec_{n}" for n in range(webhooks)}
    return Workload(accounts=[], targets=targets, secrets=secrets)


def test_requests_go_round_robin_to_each_webhook_in_its_own_account_and_room() -> None:
    workload = _workload(3)
    webhook_ids = list(workload.secrets)
    requests = backlog_requests(workload, 7, now=datetime.now(UTC))
    assert [r.webhook_id for r in requests] == [webhook_ids[n % 3] for n in range(7)]
    for request in requests:
        target = workload.targets[webhook_ids.index(request.webhook_id)]
        assert (request.organization_id, request.room_id) == (
            target.organization_id,
            target.room_id,
        )
        assert json.loads(request.body)["room"]["id"] == target.room_id


def test_each_request_is_a_delivery_of_its_own_event_as_fanout_names_it() -> None:
    requests = backlog_requests(_workload(2), 50, now=datetime.now(UTC))
    assert len({r.event_id for r in requests}) == 50
    assert all(r.delivery_id == delivery_id_for(r.webhook_id, r.event_id) for r in requests)
    assert {(r.event, r.ordering, r.position) for r in requests} == {
        ("participant.joined", "none", None)
    }


def test_the_table_gives_the_backlog_figure_its_ratio_and_the_cost_of_a_delivery() -> None:
    details = {
        "raw": {"per_s": 6000.0},
        "delivery_backlog": {
            "per_s": 3000.0,
            "cpu_percent": {"delivery_backlog": 90.0, "postgres": 30.0, "fanout": 2.0},
        },
    }
    result = report.results(details, cores=2, commit="c")
    assert result["delivery_backlog_per_s"] == 3000.0
    assert result["backlog_ratio_to_raw"] == 0.5
    table = report.table(result, details)
    assert "(1) backlog: CPU % delivery_backlog" in table
    assert "300 µs a delivery" in table  # 90 % of a core over 3,000 deliveries a second
    assert "100 µs a delivery" in table
    assert "CPU % fanout" not in table


def test_the_table_gives_each_process_cpu_per_delivery_and_per_raw_post() -> None:
    details = {
        "delivery": {
            "per_s": 2000.0,
            "cpu_percent": {"delivery": 60.0, "fanout": 20.0, "other processes": 5.0},
        },
        "raw": {"per_s": 5000.0, "cpu_percent": {"bench (publisher/client)": 80.0}},
    }
    table = report.table(report.results(details, cores=2, commit="c"), details)
    assert "300 µs a delivery" in table  # delivery: 60 % of a core over 2,000 a second
    assert "100 µs a delivery" in table  # fanout
    assert "400 µs a delivery" in table  # all of the above (not the other processes)
    assert "160 µs a POST" in table  # the raw client
