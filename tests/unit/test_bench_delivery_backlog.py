"""The delivery backlog bench's requests: what fanout would write for part 1's events."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from shared.messages import delivery_id_for
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
