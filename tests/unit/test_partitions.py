"""The pure decisions of day partitions: names, what to make, what to drop."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.partitions import (
    day_start,
    days_to_create,
    days_to_drop,
    partition_day,
    partition_name,
    retention_cutoff,
)
from shared.retention import RETENTION_USAGE, parse_every


def test_a_partition_name_reads_back_as_its_day():
    assert partition_name("deliveries", date(2026, 12, 5)) == "deliveries_p20261205"
    assert partition_day("deliveries", "deliveries_p20261205") == date(2026, 12, 5)


@pytest.mark.parametrize(
    "name",
    [
        "deliveries_default",
        "deliveries_p2026120",
        "deliveries_p202612050",
        "deliveries_p20261332",  # no such day
        "delivery_attempts_p20261205",  # another table's
        "xdeliveries_p20261205",
    ],
)
def test_names_not_made_by_the_partitioner_have_no_day(name):
    assert partition_day("deliveries", name) is None


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2200, 1, 1)))
def test_every_day_round_trips_through_its_name(day):
    assert partition_day("events", partition_name("events", day)) == day


def test_today_and_the_days_ahead_are_made_when_missing():
    today = date(2026, 12, 5)
    have = [today, today + timedelta(days=2)]
    assert days_to_create(today, have, ahead=3) == [
        today + timedelta(days=1),
        today + timedelta(days=3),
    ]
    assert days_to_create(today, [], ahead=0) == [today]


def test_a_day_is_dropped_only_once_all_of_it_is_older_than_the_cutoff():
    cutoff = datetime(2026, 11, 5, 12, 0, tzinfo=UTC)
    have = [date(2026, 11, 5), date(2026, 11, 3), date(2026, 11, 4), date(2026, 12, 5)]
    # 5 November still holds rows from after noon: kept until the next cutoff passes midnight.
    assert days_to_drop(have, cutoff=cutoff) == [date(2026, 11, 3), date(2026, 11, 4)]
    at_midnight = day_start(date(2026, 11, 6))
    assert days_to_drop(have, cutoff=at_midnight)[-1] == date(2026, 11, 5)


def test_the_cutoff_is_the_retention_period_before_now():
    now = datetime(2026, 12, 5, 17, 0, tzinfo=UTC)
    assert retention_cutoff(now, retention_days=30) == datetime(2026, 11, 5, 17, 0, tzinfo=UTC)


def test_the_retention_command_takes_nothing_or_a_positive_period():
    assert parse_every([]) is None
    assert parse_every(["--every", "3600"]) == 3600.0
    for bad in (["--every"], ["--every", "0"], ["--every", "soon"], ["now"], ["--every", "-1"]):
        with pytest.raises(ValueError, match="retention"):
            parse_every(bad)
    assert "--every" in RETENTION_USAGE
