"""The short versions of `make chaos`'s hostile-input scenarios: the platform as real processes
on a real broker and Postgres, hostile endpoints or a hostile tenant beside healthy ones.

Correctness only: the healthy deliveries/s ratio is a timing, left to `make chaos`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos import hostile_endpoints, hostile_tenants
from tests.chaos.pipeline_faults import Setup
from tests.support.hostile_endpoints import KINDS

pytestmark = pytest.mark.integration


@pytest.fixture
def setup(tmp_path: Path, postgres_url: str) -> Setup:
    return Setup(tmp_path, postgres_url, progress=print)


def _explain(outcome) -> str:
    return "; ".join(outcome.failures) + f"\n{outcome.details}"


async def test_hostile_endpoints_end_recorded_and_healthy_deliveries_all_succeed(
    setup: Setup,
) -> None:
    outcome = await hostile_endpoints.run(setup, short=True)
    assert outcome.passed, _explain(outcome)
    assert outcome.lost == 0
    assert set(outcome.details["hostile"]["by_kind"]) == set(KINDS)
    assert outcome.details["restarted"] == []


async def test_a_hostile_tenant_is_refused_or_dead_lettered_and_other_accounts_go_on(
    setup: Setup,
) -> None:
    outcome = await hostile_tenants.run(setup, short=True)
    assert outcome.passed, _explain(outcome)
    assert outcome.lost == 0
    assert outcome.details["bad_messages"]["right"] == outcome.details["bad_messages"]["sent"]
    assert outcome.details["restarted"] == []
