"""The short version of `make chaos`'s ordered scenario: ordered webhooks as real processes
on a real broker and Postgres, fanout and delivery killed under load, every room's order
checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos import ordered_faults
from tests.chaos.pipeline_faults import Setup

pytestmark = pytest.mark.integration


@pytest.fixture
def setup(tmp_path: Path, postgres_url: str) -> Setup:
    return Setup(tmp_path, postgres_url, progress=print)


async def test_kills_of_fanout_and_delivery_keep_every_room_in_order(setup: Setup) -> None:
    outcome = await ordered_faults.ordered(setup, short=True)
    assert outcome.passed, "; ".join(outcome.failures) + f"\n{outcome.details}"
    assert outcome.details["arrivals_out_of_order"] == 0
    assert outcome.details["arrivals_checked"] >= outcome.sent
    assert len(outcome.details["faults"]) == 2
