"""The scale bench's row generators: the shapes they promise, in the tables' column orders."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

from tests.bench.scale_seed import (
    ATTEMPT_COLUMNS,
    DELIVERY_COLUMNS,
    EVENT_COLUMNS,
    DeliveryShape,
    delivery_rows,
    event_rows,
)

ORG = uuid.UUID("00000000-0000-4000-8000-000000000001")
HOOKS = [uuid.UUID(int=n, version=4) for n in range(1, 21)]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _deliveries(count: int, **kw: float) -> list[tuple[tuple, tuple | None]]:
    shape = DeliveryShape(ORG, HOOKS, count, T0, timedelta(days=1), **kw)
    return list(delivery_rows(shape, random.Random(1)))


def test_deliveries_spread_over_every_webhook_oldest_first() -> None:
    rows = [row for row, _ in _deliveries(2000)]
    column = {name: n for n, name in enumerate(DELIVERY_COLUMNS)}
    assert len(rows) == 2000 and all(len(r) == len(DELIVERY_COLUMNS) for r in rows)
    assert {r[column["webhook_id"]] for r in rows} == set(HOOKS)
    created = [r[column["created_at"]] for r in rows]
    assert created == sorted(created) and created[0] == T0 and created[-1] < T0 + timedelta(days=1)
    assert len({r[column["id"]] for r in rows}) == 2000


def test_about_a_tenth_fail_and_failed_ones_say_why() -> None:
    rows = [row for row, _ in _deliveries(5000)]
    column = {name: n for n, name in enumerate(DELIVERY_COLUMNS)}
    failed = [r for r in rows if r[column["status"]] == "failed"]
    assert 0.08 < len(failed) / len(rows) < 0.12
    assert all(r[column["last_error"]] and r[column["next_attempt_at"]] is None for r in failed)
    assert all(r[column["status"]] in ("failed", "success") for r in rows)


def test_bodies_are_about_300_bytes() -> None:
    column = DELIVERY_COLUMNS.index("payload")
    sizes = [len(row[column].encode()) for row, _ in _deliveries(200)]
    assert all(250 <= size <= 350 for size in sizes)


def test_a_whole_outage_fails_with_no_attempt_rows() -> None:
    pairs = _deliveries(300, failed_fraction=1.0, attempts_fraction=0.0)
    status = DELIVERY_COLUMNS.index("status")
    assert all(row[status] == "failed" and attempt is None for row, attempt in pairs)


def test_attempt_rows_belong_to_their_delivery() -> None:
    pairs = [(row, attempt) for row, attempt in _deliveries(4000) if attempt is not None]
    assert 100 < len(pairs) < 300  # about 5 %
    for row, attempt in pairs:
        assert len(attempt) == len(ATTEMPT_COLUMNS)
        assert attempt[0] == row[0] and attempt[1] == row[DELIVERY_COLUMNS.index("attempts")]


def test_events_accepted_reach_one_webhook_and_refused_carry_a_reason() -> None:
    rows = list(
        event_rows(
            ORG, HOOKS, count=3000, first_at=T0, span=timedelta(days=7), rng=random.Random(2)
        )
    )
    column = {name: n for n, name in enumerate(EVENT_COLUMNS)}
    assert len(rows) == 3000 and all(len(r) == len(EVENT_COLUMNS) for r in rows)
    rejected = [r for r in rows if r[column["status"]] == "rejected"]
    accepted = [r for r in rows if r[column["status"]] == "accepted"]
    assert 0 < len(rejected) < 100
    assert all(r[column["reason"]] and r[column["payload"]] is None for r in rejected)
    assert all(len(r[column["webhook_ids"]]) == 1 and r[column["payload"]] for r in accepted)
    assert all(r[column["organization_id"]] == ORG for r in rows)
    # The row id is the one fanout would give it: a re-read event is the same row.
    assert all(r[0] == uuid.uuid5(ORG, r[column["event_id"]]) for r in rows)
