"""The end of a rotation's overlap: what the platform's audit entry holds, the sweep's batches,
and the background loop that repeats it."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.registry.audit.models import Actor
from services.registry.audit.recorder import changed_fields, safe_change
from services.registry.background import repeat
from services.registry.webhooks.models import EndedOverlap
from services.registry.webhooks.secret_overlaps import ACTION, OverlapSweep, overlap_ended_entry

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def ended(minutes_ago: int = 1) -> EndedOverlap:
    return EndedOverlap(uuid.uuid4(), uuid.uuid4(), NOW - timedelta(minutes=minutes_ago))


def test_an_ended_overlap_is_the_platforms_change_of_the_two_fields_with_no_secret():
    overlap = ended()
    entry = overlap_ended_entry(overlap, now=NOW)
    assert entry.actor == Actor.system(str(overlap.organization_id))
    assert (entry.account_id, entry.created_at) == (overlap.organization_id, NOW)
    assert (entry.action, entry.target_id) == (
        "webhook.secret_overlap_ended",
        str(overlap.webhook_id),
    )
    assert entry.changes == [
        {"field": "previous_secret", "hidden": True},
        {"field": "previous_secret_expires_at", "value": None},
    ]


@pytest.mark.parametrize("value", ["whsec-old", None])
def test_a_previous_secret_is_never_copied_into_an_entry(value):
    assert safe_change("previous_secret", value) == {"field": "previous_secret", "hidden": True}
    assert changed_fields(None, {"previous_secret": "whsec-old"}) == [
        {"field": "previous_secret", "hidden": True}
    ]


class FakeOverlaps:
    """EndedOverlaps over a list: a transaction takes the earliest ended, audits with it."""

    def __init__(self, waiting: list[EndedOverlap]) -> None:
        self.waiting = sorted(waiting, key=lambda o: o.ended_at)
        self.audited: list = []

    @contextlib.asynccontextmanager
    async def transaction(self):
        yield self

    async def end_overlaps(self, *, now, limit):
        due = [o for o in self.waiting if o.ended_at <= now][:limit]
        self.waiting = [o for o in self.waiting if o not in due]
        return due

    async def audit(self, entry):
        self.audited.append(entry)


async def test_the_sweep_audits_each_ended_overlap_once_and_says_when_a_batch_was_full():
    overlaps = [ended(3), ended(2), ended(1)]
    future = EndedOverlap(uuid.uuid4(), uuid.uuid4(), NOW + timedelta(seconds=1))
    store = FakeOverlaps([*overlaps, future])
    sweep = OverlapSweep(store, lambda: NOW, batch=2)
    assert await sweep.run_once() is True
    assert await sweep.run_once() is False
    assert await sweep.run_once() is False
    assert [e.target_id for e in store.audited] == [str(o.webhook_id) for o in overlaps]
    assert {e.action for e in store.audited} == {ACTION}
    assert store.waiting == [future]


async def test_the_loop_goes_on_at_once_after_a_full_batch_and_waits_a_period_otherwise():
    answers: list[bool | Exception] = [True, True, False, RuntimeError("db gone"), False]
    steps, waits = [], []

    async def step() -> bool:
        steps.append(len(steps))
        answer = answers[len(steps) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 3:
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await repeat(step, every_s=60.0, name="test", sleep=sleep)
    assert len(steps) == 5  # a failure did not end the loop
    assert waits == [60.0, 60.0, 60.0]  # after the partial batch, the failure, the last one
