"""The short version of `make chaos`'s sandbox scenario: hostile workflows all at once against the
real Deno sandbox and Postgres, while the guide's "Log new participants" runs on.

Containment and recording only: the benign workflow's latency under attack is a timing, left
to `make chaos` (its figures are still in the outcome's details).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos import sandbox_attack
from tests.chaos.hostile_workflows import HOSTILE

pytestmark = pytest.mark.integration


async def test_every_hostile_run_is_contained_and_recorded_and_the_benign_one_succeeds(
    tmp_path: Path, postgres_url: str
) -> None:
    outcome = await sandbox_attack.run(
        short=True, work_dir=tmp_path, check_latency=False, postgres_url=postgres_url
    )
    assert outcome.passed, "; ".join(outcome.failures) + f"\n{outcome.details}"
    assert outcome.lost == 0 and outcome.delivered == outcome.sent > len(HOSTILE)
    assert set(outcome.details["hostile"]) == {hostile.name for hostile in HOSTILE}
    assert outcome.details["benign_runs"]["failed"] == 0
    assert outcome.details["benign_runs"]["attack"] > 0
