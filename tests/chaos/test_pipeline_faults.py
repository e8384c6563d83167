"""The short versions of `make chaos`'s pipeline scenarios: the platform as real processes on
a real broker and Postgres, faults injected under load, every (webhook, event) pair checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos import pipeline_faults
from tests.chaos.pipeline_faults import Setup

pytestmark = pytest.mark.integration


@pytest.fixture
def setup(tmp_path: Path, postgres_url: str) -> Setup:
    return Setup(tmp_path, postgres_url, progress=print)


def _explain(outcome) -> str:
    return "; ".join(outcome.failures) + f"\n{outcome.details}"


async def test_killed_services_lose_no_delivery(setup: Setup) -> None:
    outcome = await pipeline_faults.crashes(setup, short=True)
    assert outcome.passed, _explain(outcome)
    assert outcome.lost == 0
    assert len(outcome.details["faults"]) == 4


async def test_two_delivery_replicas_share_retries_and_survive_losing_one(setup: Setup) -> None:
    outcome = await pipeline_faults.replicas(setup, short=True)
    assert outcome.passed, _explain(outcome)
    assert outcome.details["retries_sent_twice"] == 0


async def test_poison_goes_to_the_dlq_with_its_reason_and_good_events_still_arrive(
    setup: Setup,
) -> None:
    outcome = await pipeline_faults.poison(setup, short=True)
    assert outcome.passed, _explain(outcome)
    assert outcome.details["dead_letters"]["missing"] == 0
    assert outcome.details["restarted"] == []
