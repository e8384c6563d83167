"""The end of a rotation's overlap on the real registry and Postgres: the sweep erases the
previous secret and its end once, with one audit entry by the platform (GET /audit-log),
leaves a webhook still in its overlap alone, takes each webhook once with replicas sweeping
together, keeps nothing of a transaction that fails, reads only the webhooks in an overlap,
and delivery has no previous secret to sign with afterwards."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.delivery.targets import Targets
from services.registry.webhooks.repository import _END_OVERLAPS, PostgresEndedOverlaps
from services.registry.webhooks.secret_overlaps import ACTION, OverlapSweep, overlaps_ended
from shared.secrets_box import SecretsBox
from tests.support.polling import eventually
from tests.support.secrets import TEST_SECRETS_KEY

pytestmark = pytest.mark.integration


def utcnow() -> datetime:
    return datetime.now(UTC)


async def rotated(registry, account=None, *, overlap_s: int = 3600) -> dict:
    """A new webhook of `account` (alice's by default) rotated with `overlap_s`; its record
    with the secret it was created with (`old`)."""
    account = account or registry.alice
    resp = await registry.http.post(
        registry.webhooks_url(account),
        json={"url": "http://127.0.0.1:9/in", "events": ["participant.joined"]},
        headers=account.auth(),
    )
    assert resp.status == 201, await resp.text()
    created = (await resp.json())["data"]["webhook"]
    url = registry.webhooks_url(account, created["id"]) + "/rotate-secret"
    resp = await registry.http.post(url, json={"overlapSeconds": overlap_s}, headers=account.auth())
    assert resp.status == 200, await resp.text()
    return {**(await resp.json())["data"]["webhook"], "old": created["secret"]}


async def end_overlap_of(pool, webhook: dict, seconds_ago: float = 1) -> None:
    """Move the overlap's end into the past, as if its time had passed."""
    await pool.execute(
        "UPDATE registry.webhooks SET previous_secret_until = now() - make_interval(secs => $2)"
        " WHERE id = $1",
        uuid.UUID(webhook["id"]),
        seconds_ago,
    )


async def previous_of(pool, webhook: dict) -> tuple:
    row = await pool.fetchrow(
        "SELECT previous_secret_ciphertext, previous_secret_until, revision, updated_at"
        " FROM registry.webhooks WHERE id = $1",
        uuid.UUID(webhook["id"]),
    )
    return tuple(row)


async def audit_log(registry, account=None) -> list[dict]:
    account = account or registry.alice
    resp = await registry.http.get(
        f"{registry.url}/v1/accounts/{account.id}/audit-log?limit=100", headers=account.auth()
    )
    assert resp.status == 200, await resp.text()
    return (await resp.json())["data"]["entries"]


def ended_entries(entries: list[dict]) -> list[dict]:
    return [e for e in entries if e["action"] == ACTION]


async def test_an_ended_overlap_is_erased_once_with_one_system_entry_and_an_open_one_is_not(
    registry, pool
):
    ended, open_ = await rotated(registry), await rotated(registry)
    await end_overlap_of(pool, ended)
    before_ended, before_open = await previous_of(pool, ended), await previous_of(pool, open_)
    assert before_ended[0] is not None and before_open[0] is not None
    sweep = OverlapSweep(PostgresEndedOverlaps(pool), utcnow)

    assert await sweep.run_once() is False  # not a full batch
    cleared = await previous_of(pool, ended)
    assert cleared[:2] == (None, None)
    assert cleared[2:] == before_ended[2:]  # neither revision nor updated_at: nothing announced
    assert await previous_of(pool, open_) == before_open
    [entry] = ended_entries(await audit_log(registry))
    assert (entry["actor"], entry["key_id"], entry["role"]) == ("system", None, None)
    assert entry["target_id"] == ended["id"]
    assert entry["changes"] == [
        {"field": "previous_secret", "value": None, "hidden": True},
        {"field": "previous_secret_expires_at", "value": None, "hidden": False},
    ]
    shown = await registry.http.get(
        registry.webhooks_url(registry.alice, ended["id"]), headers=registry.alice.auth()
    )
    assert (await shown.json())["data"]["webhook"]["previous_secret_expires_at"] is None

    everything = json.dumps(await audit_log(registry))
    assert not [s for s in (ended["old"], ended["secret"]) if s in everything]
    assert before_ended[0] not in everything  # nor its sealed form

    entries = len(await audit_log(registry))
    assert await sweep.run_once() is False
    assert len(await audit_log(registry)) == entries  # a second sweep writes nothing
    assert await previous_of(pool, open_) == before_open


async def test_each_account_reads_the_entries_of_its_own_webhooks_only(registry, pool):
    alices, bobs = await rotated(registry), await rotated(registry, registry.bob)
    for webhook in (alices, bobs):
        await end_overlap_of(pool, webhook)
    await OverlapSweep(PostgresEndedOverlaps(pool), utcnow).run_once()
    assert [e["target_id"] for e in ended_entries(await audit_log(registry))] == [alices["id"]]
    bob_entries = ended_entries(await audit_log(registry, registry.bob))
    assert [e["target_id"] for e in bob_entries] == [bobs["id"]]


async def test_replicas_sweeping_together_never_take_the_same_webhook(registry, pool):
    webhooks = [await rotated(registry) for _ in range(3)]
    for n, webhook in enumerate(webhooks):
        await end_overlap_of(pool, webhook, seconds_ago=10 - n)
    store = PostgresEndedOverlaps(pool)
    async with store.transaction() as first:
        taken = await first.end_overlaps(now=utcnow(), limit=2)
        assert [str(o.webhook_id) for o in taken] == [w["id"] for w in webhooks[:2]]  # earliest
        async with store.transaction() as other:
            # Waiting for the first's locks would hang: fail instead.
            rest = await asyncio.wait_for(other.end_overlaps(now=utcnow(), limit=10), 10)
        assert [str(o.webhook_id) for o in rest] == [webhooks[2]["id"]]  # SKIP LOCKED
    async with store.transaction() as later:
        assert await later.end_overlaps(now=utcnow(), limit=10) == []


async def test_a_sweep_whose_transaction_fails_erases_and_audits_nothing(registry, pool):
    webhook = await rotated(registry)
    await end_overlap_of(pool, webhook)
    before = await previous_of(pool, webhook)

    class Failing(RuntimeError):
        pass

    store = PostgresEndedOverlaps(pool)
    with pytest.raises(Failing):
        async with store.transaction() as tx:
            assert len(await tx.end_overlaps(now=utcnow(), limit=10)) == 1
            raise Failing
    assert await previous_of(pool, webhook) == before
    assert ended_entries(await audit_log(registry)) == []


async def test_an_overlap_ending_after_the_sweeps_time_is_kept(registry, pool):
    webhook = await rotated(registry)
    await end_overlap_of(pool, webhook)
    async with PostgresEndedOverlaps(pool).transaction() as tx:
        assert await tx.end_overlaps(now=utcnow() - timedelta(hours=1), limit=10) == []
    assert (await previous_of(pool, webhook))[0] is not None


async def test_the_sweep_runs_beside_the_api_every_period(registry, pool):
    webhook = await rotated(registry)
    await end_overlap_of(pool, webhook)
    async with overlaps_ended(PostgresEndedOverlaps(pool), utcnow, every_s=0.05):

        async def erased() -> bool:
            return (await previous_of(pool, webhook))[0] is None

        await eventually(erased, timeout_s=10)
        webhook_later = await rotated(registry)
        await end_overlap_of(pool, webhook_later)

        async def erased_later() -> bool:
            return (await previous_of(pool, webhook_later))[0] is None

        await eventually(erased_later, timeout_s=10)  # not only once
    entries = ended_entries(await audit_log(registry))
    assert sorted(e["target_id"] for e in entries) == sorted([webhook["id"], webhook_later["id"]])


async def test_delivery_has_no_previous_secret_to_sign_with_once_it_is_erased(registry, pool):
    webhook = await rotated(registry)
    targets = Targets(pool, SecretsBox([TEST_SECRETS_KEY]), ttl_s=0)
    during = await targets.get(uuid.UUID(webhook["id"]))
    assert during is not None and during.previous_secret is not None
    assert during.previous_secret.secret == webhook["old"]
    await end_overlap_of(pool, webhook)
    await OverlapSweep(PostgresEndedOverlaps(pool), utcnow).run_once()
    after = await targets.get(uuid.UUID(webhook["id"]))
    assert after is not None and after.previous_secret is None
    assert after.secret == webhook["secret"]


async def test_the_sweep_reads_only_the_webhooks_in_an_overlap_from_their_index(pool):
    account, now = uuid.uuid4(), utcnow()
    await pool.execute("INSERT INTO registry.accounts (id, name) VALUES ($1, 'a')", account)
    rows = [
        (
            uuid.uuid4(),
            account,
            "https://h.example.com",
            "k:sealed",
            ["participant.joined"],
            now,
            now,
        )
        for _ in range(5_000)
    ]
    async with pool.acquire() as conn:
        await conn.copy_records_to_table(
            "webhooks",
            schema_name="registry",
            columns=[
                "id", "organization_id", "url", "secret_ciphertext", "events", "created_at",
                "updated_at",
            ],
            records=rows,
        )  # fmt: skip
        await conn.execute(
            "UPDATE registry.webhooks SET previous_secret_ciphertext = 'k:old',"
            " previous_secret_until = now() WHERE id = ANY($1::uuid[])",
            [r[0] for r in rows[:5]],
        )
        await conn.execute("ANALYZE registry.webhooks")
        plan = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {_END_OVERLAPS}", now, 500)
    plan_text = plan if isinstance(plan, str) else json.dumps(plan)
    assert "webhooks_previous_secret_until_idx" in plan_text
    assert "Seq Scan" not in plan_text
