"""How long the runner waits before trying an input again, and when /readyz says it tried
one input too often."""

from __future__ import annotations

import pytest

from services.workflow_runner.retries import RetryWatches, backoff_s


@pytest.mark.parametrize(
    ("failures", "seconds"), [(0, 0.0), (1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 5.0), (99, 5.0)]
)
def test_the_back_off_doubles_from_half_a_second_up_to_its_cap(failures, seconds) -> None:
    assert backoff_s(failures, max_s=5.0) == seconds


def test_an_input_retried_past_the_limit_turns_the_check_red_with_its_reason() -> None:
    watches = RetryWatches(what="run", limit=2)
    watches.failed("run-a", "ConnectionRefusedError()")
    for _ in range(3):
        watches.failed("run-b", "SandboxUnavailable('no host')")
    assert watches.check() == "run run-b failed 3 times in a row: SandboxUnavailable('no host')"


def test_an_input_under_the_limit_or_forgotten_leaves_the_check_green() -> None:
    watches = RetryWatches(what="run", limit=2)
    for _ in range(5):
        watches.failed("run-b", "boom")
    watches.failed("run-a", "boom")
    watches.forget("run-b")
    assert watches.check() == "ok"
