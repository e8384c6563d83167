"""The soak bench's pure parts: the growth figure and the rooms it publishes to."""

from __future__ import annotations

import pytest

from tests.bench import report
from tests.bench.soak_part import Expected, FreshRooms, growth_mb_per_min, unfinished


def test_growth_is_the_slope_of_the_samples_from_the_given_minute_on() -> None:
    # Fast growth while the heap fills (minutes 0-4), then 0.5 MB a minute.
    samples = [(t, 60 + 5 * t) for t in range(5)] + [(t, 80 + 0.5 * (t - 5)) for t in range(5, 11)]
    assert growth_mb_per_min(samples, since=5) == pytest.approx(0.5)
    assert growth_mb_per_min(samples, since=0) > 1


def test_flat_memory_has_no_growth_whatever_its_noise() -> None:
    samples = [(t / 2, 80 + (0.4 if t % 2 else -0.4)) for t in range(20)]
    assert growth_mb_per_min(samples, since=5) == pytest.approx(0, abs=0.1)


def test_too_few_late_samples_give_no_figure() -> None:
    assert growth_mb_per_min([(0, 1), (1, 2), (6, 3), (7, 4)], since=5) is None


def test_every_event_goes_to_a_room_of_its_own_in_the_one_organization() -> None:
    rooms = FreshRooms("org-1")
    targets = [rooms[i] for i in range(1000)]
    assert len({t.room_id for t in targets}) == 1000
    assert {t.organization_id for t in targets} == {"org-1"}
    assert rooms[7] == rooms[7]  # the same index is the same room (at_rate may ask again)
    assert FreshRooms("org-1")[0].room_id != rooms[0].room_id  # each run its own rooms


def test_unfinished_counts_work_never_stored_as_well_as_work_under_way() -> None:
    expected = Expected(deliveries=300, runs=100)
    assert unfinished(expected, ended_deliveries=300, ended_runs=100) == Expected(0, 0)
    # A backlog still in Kafka: nothing pending in Postgres, yet 180 deliveries not ended.
    assert unfinished(expected, ended_deliveries=120, ended_runs=40) == Expected(180, 60)
    # Never below zero, whatever else the account holds.
    assert unfinished(expected, ended_deliveries=301, ended_runs=101) == Expected(0, 0)


def _soak_details(unfinished: dict[str, int]) -> dict:
    return {
        "soak": {
            "published": 100,
            "growth_mb_per_min": {"delivery": 0.5},
            "service_growth_mb_per_min": 0.5,
            "rss_first_mb": {"delivery": 70.0},
            "rss_last_mb": {"delivery": 75.0},
            "deliveries": {"success": 300 - unfinished["deliveries"]},
            "runs": {"success": 100 - unfinished["runs"]},
            "drain_s": 3.0,
            "expected": {"deliveries": 300, "runs": 100},
            "unfinished": unfinished,
            "order_heads_left": 0,
        }
    }


def test_the_table_warns_when_the_soak_fell_behind_and_only_then() -> None:
    behind = _soak_details({"deliveries": 180, "runs": 60})
    kept_up = _soak_details({"deliveries": 0, "runs": 0})
    behind_table = report.table(report.results(behind, cores=2, commit="c"), behind)
    kept_up_table = report.table(report.results(kept_up, cores=2, commit="c"), kept_up)
    assert "WARNING soak fell behind" in behind_table
    assert "180 + 60" in behind_table
    assert "WARNING soak fell behind" not in kept_up_table
    assert "0 + 0" in kept_up_table
