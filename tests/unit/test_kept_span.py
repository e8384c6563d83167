"""The days a log page names (`kept_span`): every instant a row can hold, in whole UTC days
that each have a partition while retention runs, given as literals in the page statements."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, time, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.fanout.stamps import MAX_AHEAD
from services.registry.deliveries.repository import PostgresDeliveryLog
from services.registry.deliveries.repository import page_query as delivery_page
from services.registry.events.models import EventFilters
from services.registry.events.repository import PostgresEventLog
from services.registry.events.repository import page_query as event_page
from services.registry.workflows.repository import PostgresWorkflows, executions_query
from shared.partitions import (
    DAYS_AHEAD,
    day_start,
    days_to_create,
    days_to_drop,
    kept_span,
    planned_limit,
    retention_cutoff,
    within_span,
)
from tests.support.plans import KeptStatements

TODAY = date(2026, 12, 5)
instants = st.datetimes(
    min_value=datetime(2001, 1, 1), max_value=datetime(2199, 1, 1), timezones=st.just(UTC)
)
retentions = st.integers(min_value=1, max_value=3650)


def test_the_span_runs_from_the_cutoffs_day_to_the_end_of_tomorrow():
    assert kept_span(TODAY, 30) == (
        datetime(2026, 11, 5, tzinfo=UTC),
        datetime(2026, 12, 7, tzinfo=UTC),
    )


@given(instants, retentions)
def test_every_instant_a_row_can_be_stamped_with_lies_in_the_span(now, retention_days):
    start, end = kept_span(now.date(), retention_days)
    # Fanout keeps no stamp older than the cutoff nor more than MAX_AHEAD after its clock.
    assert start <= retention_cutoff(now, retention_days=retention_days)
    assert now + MAX_AHEAD < end


@given(instants, retentions)
def test_no_day_of_the_span_is_dropped_by_retention(now, retention_days):
    start, _ = kept_span(now.date(), retention_days)
    cutoff = retention_cutoff(now, retention_days=retention_days)
    dropped = days_to_drop([start.date(), start.date() - timedelta(days=1)], cutoff=cutoff)
    # The day before the span's goes by the day's first run: naming it would leave a day
    # without a partition, and the default partition in every page's plan.
    assert dropped == [start.date() - timedelta(days=1)]


@given(retentions)
def test_every_day_of_the_span_ahead_was_made_by_yesterdays_run(retention_days):
    _, end = kept_span(TODAY, retention_days)
    made = days_to_create(TODAY - timedelta(days=1), [], ahead=DAYS_AHEAD)
    ahead = [TODAY + timedelta(days=n) for n in range((end.date() - TODAY).days)]
    assert set(ahead) <= set(made)


@pytest.mark.parametrize("log", ["deliveries", "events", "executions"])
async def test_a_pages_text_changes_once_a_day_at_midnight_utc(log):
    """One text all day: asyncpg's prepared statements stay cached."""
    texts = [
        await statement_at(log, datetime(2026, 12, 5, 0, 0, tzinfo=UTC)),
        await statement_at(log, datetime(2026, 12, 5, 23, 59, 59, tzinfo=UTC)),
        # The same instant on a clock fourteen hours ahead: already 6 December there.
        await statement_at(log, datetime(2026, 12, 6, 13, 0, tzinfo=timezone(timedelta(hours=14)))),
        await statement_at(log, datetime(2026, 12, 6, 0, 0, tzinfo=UTC)),
    ]
    assert texts[0] == texts[1] == texts[2] != texts[3]
    assert "'2026-11-05T00:00:00+00:00'" in texts[0]


async def statement_at(log: str, now: datetime) -> str:
    kept, org, owner = KeptStatements(), uuid.uuid4(), uuid.uuid4()
    days = {"retention_days": 30, "clock": lambda: now}
    if log == "deliveries":
        await PostgresDeliveryLog(kept, **days).page(org, owner, status=None, limit=51, after=None)
    elif log == "events":
        await PostgresEventLog(kept, **days).page(org, EventFilters(), limit=51, after=None)
    else:
        await PostgresWorkflows(Acquiring(kept), **days).executions(
            org, owner, status=None, limit=51, after=None
        )
    [(sql, _args)] = kept.statements
    return sql


class Acquiring:
    """A pool whose connections are `conn`."""

    def __init__(self, conn: KeptStatements) -> None:
        self._conn = conn

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[KeptStatements]:
        yield self._conn


def test_without_retention_days_a_page_names_no_days():
    sql, _ = delivery_page(uuid.uuid4(), uuid.uuid4(), status=None, limit=51, after=None)
    assert "created_at >=" not in sql


def test_the_span_is_whole_days():
    for bound in kept_span(TODAY, 30):
        assert bound.timetz() == time(tzinfo=UTC) and bound == day_start(bound.date())


def test_the_span_is_written_as_literals():
    sql = within_span("created_at", kept_span(TODAY, 30))
    assert sql == (
        "created_at >= '2026-11-05T00:00:00+00:00' AND created_at < '2026-12-07T00:00:00+00:00'"
    )


def test_every_log_page_names_the_span_as_literals_and_takes_no_more_arguments():
    org, owner, kept = uuid.uuid4(), uuid.uuid4(), kept_span(TODAY, 30)
    after = (datetime(2026, 12, 1, tzinfo=UTC), uuid.uuid4())
    builders = {
        "deliveries": lambda kept: delivery_page(
            org, owner, status="failed", limit=51, after=after, kept=kept
        ),
        "events": lambda kept: event_page(
            org, EventFilters(status="rejected"), limit=51, after=after, kept=kept
        ),
        "executions": lambda kept: executions_query(
            org, owner, status="error", limit=51, after=after, kept=kept
        ),
    }
    for name, build in builders.items():
        column = "received_at" if name == "events" else "created_at"
        (bounded, args), (unbounded, unbounded_args) = build(kept), build(None)
        assert within_span(column, kept) in bounded, name
        assert within_span(column, kept) not in unbounded, name
        assert args == unbounded_args, name


@given(st.integers(min_value=1, max_value=100_000))
def test_a_page_is_planned_for_the_power_of_two_at_or_above_the_rows_it_wants(limit):
    planned = planned_limit(limit)
    assert limit <= planned < 2 * limit
    assert planned & (planned - 1) == 0


def test_every_page_size_offered_makes_one_of_a_few_statements():
    # page sizes 1 to 100, each read with one row more to know whether a next page exists
    assert sorted({planned_limit(size + 1) for size in range(1, 101)}) == [
        2, 4, 8, 16, 32, 64, 128
    ]  # fmt: skip


def test_a_page_wanting_no_rows_is_refused():
    with pytest.raises(ValueError, match="at least one row"):
        planned_limit(0)


def test_a_first_pages_limit_is_a_literal_and_a_next_pages_an_argument():
    """A next page is planned for its cursor's values every time: a cached plan would guess
    how many rows lie before the cursor."""
    org, owner = uuid.uuid4(), uuid.uuid4()
    after = (datetime(2026, 12, 1, tzinfo=UTC), uuid.uuid4())
    for page in (
        lambda after: delivery_page(org, owner, status=None, limit=51, after=after),
        lambda after: event_page(org, EventFilters(), limit=51, after=after),
        lambda after: executions_query(org, owner, status="error", limit=51, after=after),
    ):
        sql, args = page(None)
        assert sql.endswith(" LIMIT 64") and 51 not in args
        sql, args = page(after)
        assert sql.endswith(f" LIMIT ${len(args)}") and args[-1] == 51


def test_an_event_page_by_event_and_room_is_planned_for_their_values_every_time():
    by_both = EventFilters(event="participant.joined", room_id="room-1")
    sql, args = event_page(uuid.uuid4(), by_both, limit=51, after=None)
    assert sql.endswith(f" LIMIT ${len(args)}") and args[-1] == 51
    sql, args = event_page(uuid.uuid4(), EventFilters(room_id="room-1"), limit=51, after=None)
    assert sql.endswith(" LIMIT 64")
