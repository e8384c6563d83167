"""The contract of `StaleWebhooks` (auto-disable's store, services/delivery/upkeep.py), run
against the fake (tests/support/delivery_fakes.py) and the Postgres adapter
(services/delivery/health_store.py): which webhooks a turn takes, with what, once per
failure, one turn at a time, nothing noted when it raises."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from services.delivery.health_store import PostgresStaleWebhooks
from services.delivery.upkeep import StaleWebhooks
from tests.support.delivery_fakes import FakeStaleWebhooks

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LATER = T0 + timedelta(days=5)  # the turns' stale_before and now, unless said otherwise
# Bounds a turn's wait for another's rows: waiting instead of skipping fails, never hangs.
TURN_WAIT_S = 10


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


@dataclass
class Health:
    """The store, and how the test writes the rows it reads, on either side."""

    store: StaleWebhooks
    register_row: Callable[..., Any]
    put_row: Callable[..., Any]

    async def register(self, *, enabled: bool = True, created_at: datetime = T0) -> uuid.UUID:
        """A webhook in the registry; its id."""
        webhook_id = uuid.uuid4()
        await self.register_row(webhook_id, uuid.uuid4(), enabled=enabled, created_at=created_at)
        return webhook_id

    async def put(self, webhook_id: uuid.UUID, *, updated_at: datetime = T0, **fields) -> None:
        """Set these columns of the webhook's health row, made when missing."""
        await self.put_row(webhook_id, updated_at=updated_at, **fields)

    def turn(self, *, stale_before: datetime = LATER, limit: int = 10, now=LATER):
        return self.store.stale_turn(stale_before=stale_before, limit=limit, now=now)

    async def taken(self, **kwargs) -> list[uuid.UUID]:
        """The ids one whole turn takes (and notes ordered)."""
        async with self.turn(**kwargs) as stale:
            return [s.webhook_id for s in stale]


def _fake() -> Health:
    fake = FakeStaleWebhooks()

    async def register(webhook_id, organization_id, *, enabled, created_at) -> None:
        fake.register(webhook_id, organization_id, enabled=enabled, created_at=created_at)

    async def put(webhook_id, *, updated_at, **fields) -> None:
        fake.put_health(webhook_id, updated_at=updated_at, **fields)

    return Health(fake, register, put)


def _postgres(pool: asyncpg.Pool) -> Health:
    async def register(webhook_id, organization_id, *, enabled, created_at) -> None:
        await pool.execute(
            "INSERT INTO registry.accounts (id, name) VALUES ($1, 'a')", organization_id
        )
        await pool.execute(
            "INSERT INTO registry.webhooks (id, organization_id, url, secret_ciphertext, events,"
            " enabled, created_at, updated_at)"
            " VALUES ($1, $2, 'https://h.example.com', 'k:sealed', '{participant.joined}', $3,"
            " $4, $4)",
            webhook_id,
            organization_id,
            enabled,
            created_at,
        )

    async def put(webhook_id, *, updated_at, **fields) -> None:
        columns = ["webhook_id", "updated_at", *fields]
        values = ", ".join(f"${n}" for n in range(1, len(columns) + 1))
        sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns[1:])
        await pool.execute(
            f"INSERT INTO delivery.webhook_health ({', '.join(columns)}) VALUES ({values})"
            f" ON CONFLICT (webhook_id) DO UPDATE SET {sets}",
            webhook_id,
            updated_at,
            *fields.values(),
        )

    return Health(PostgresStaleWebhooks(pool), register, put)


@pytest.fixture(params=["fake", "real"])
def health(request: pytest.FixtureRequest) -> Health:
    return _fake() if request.param == "fake" else _postgres(request.getfixturevalue("pool"))


async def test_a_turn_takes_what_failed_for_good_since_its_last_success_oldest_failure_first(
    health,
):
    never_succeeded = await health.register()
    await health.put(never_succeeded, last_gave_up_at=at(24), last_error="HTTP 503")
    failed_after_success = await health.register()
    await health.put(failed_after_success, last_success_at=at(1), last_gave_up_at=at(2))
    recovered = await health.register()
    await health.put(recovered, last_gave_up_at=at(1), last_success_at=at(2))
    never_failed = await health.register()
    await health.put(never_failed, last_success_at=at(1))

    async with health.turn() as stale:
        assert [s.webhook_id for s in stale] == [failed_after_success, never_succeeded]
        later, first = stale
    assert (first.enabled, first.since, first.last_gave_up_at) == (True, T0, at(24))
    assert first.organization_id is not None and first.last_error == "HTTP 503"
    assert (later.since, later.last_gave_up_at, later.last_error) == (at(1), at(2), None)


async def test_a_webhook_is_taken_only_once_it_has_not_succeeded_since_before_the_cutoff(health):
    young = await health.register(created_at=at(100))  # never succeeded: since its creation
    await health.put(young, last_gave_up_at=at(101))
    succeeded = await health.register()
    await health.put(succeeded, last_success_at=at(100), last_gave_up_at=at(101))

    assert await health.taken(stale_before=at(100)) == []  # since is not before the cutoff
    assert await health.taken(stale_before=at(100.5)) == [young, succeeded]


async def test_a_deleted_or_disabled_webhook_is_taken_with_what_is_known_of_it(health):
    deleted = uuid.uuid4()  # a health row without a registry row
    await health.put(deleted, updated_at=at(-1), last_gave_up_at=at(1))
    disabled = await health.register(enabled=False)
    await health.put(disabled, last_gave_up_at=at(2))

    async with health.turn() as stale:
        gone, off = stale
    assert (gone.webhook_id, gone.organization_id, gone.enabled) == (deleted, None, False)
    assert gone.since == at(-1)  # no success, no creation known: the row's own time
    assert (off.webhook_id, off.enabled, off.since) == (disabled, False, T0)
    assert off.organization_id is not None


async def test_each_failure_is_taken_once_and_a_later_one_again(health):
    webhook = await health.register()
    await health.put(webhook, last_gave_up_at=at(1))
    assert await health.taken(now=at(50)) == [webhook]
    assert await health.taken(now=at(60)) == []  # ordered at hour 50: not again
    await health.put(webhook, updated_at=at(45), last_gave_up_at=at(45))
    assert await health.taken(now=at(60)) == []  # a failure from before that order
    await health.put(webhook, updated_at=at(70), last_gave_up_at=at(70))
    assert await health.taken(now=at(80)) == [webhook]


async def test_a_turn_holds_what_it_took_until_it_ends(health):
    first, second = await health.register(), await health.register()
    await health.put(first, last_gave_up_at=at(1))
    await health.put(second, last_gave_up_at=at(2))

    async with health.turn(limit=1) as stale:
        assert [s.webhook_id for s in stale] == [first]
        meanwhile = await asyncio.wait_for(health.taken(), TURN_WAIT_S)
        assert meanwhile == [second]  # another replica's turn skips what this one holds
    assert await health.taken() == []


async def test_a_turn_that_raises_notes_nothing(health):
    webhook = await health.register()
    await health.put(webhook, last_gave_up_at=at(1))

    class Crashed(RuntimeError):
        pass

    with pytest.raises(Crashed):
        async with health.turn() as stale:
            assert [s.webhook_id for s in stale] == [webhook]
            raise Crashed
    assert await health.taken() == [webhook]  # ordered on a later pass
