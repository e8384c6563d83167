"""POST .../webhooks/{id}/recover and GET .../jobs/{id} over HTTP: what bad input gets (a 400
naming the field), and what another account's key gets (403 or 404, nothing written)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.registry.policy import Role
from shared.events import format_timestamp
from tests.support.deliveries import create_webhook

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
PAST = format_timestamp(NOW - timedelta(hours=2))
EARLIER = format_timestamp(NOW - timedelta(hours=3))
FUTURE = format_timestamp(NOW + timedelta(hours=1))


def recover_url(registry, account_id: str, webhook_id: str) -> str:
    return registry.webhooks_url(account_id, webhook_id) + "/recover"


def job_url(registry, account_id: str, job_id: str) -> str:
    return f"{registry.url}/v1/accounts/{account_id}/jobs/{job_id}"


async def jobs_count(pool) -> int:
    return await pool.fetchval("SELECT count(*) FROM registry.jobs")


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (None, "body", "a JSON object is required"),
        ([], "body", "Input should be"),
        ({}, "since", "field required"),
        ({"since": "2026-11-30"}, "since", "RFC 3339"),
        ({"since": "2026-11-30T10:00:00"}, "since", "RFC 3339"),
        ({"since": 1764500000}, "since", "RFC 3339"),
        ({"since": "2026-13-01T10:00:00Z"}, "since", "real date"),
        ({"since": "2026-11-30T10:00:00Z\u0000"}, "since", "NUL"),
        ({"since": FUTURE}, "since", "must be in the past"),
        ({"since": PAST, "until": FUTURE}, "until", "must not be in the future"),
        ({"since": PAST, "until": PAST}, "until", "must be later than since"),
        ({"since": PAST, "until": EARLIER}, "until", "must be later than since"),
        ({"since": PAST, "until": 7}, "until", "RFC 3339"),
        ({"since": PAST, "window": "1h"}, "window", "unknown field"),
    ],
)
async def test_bad_input_gets_a_400_naming_the_field_and_orders_nothing(
    registry, pool, body, field, message
):
    webhook = await create_webhook(registry, "https://hooks.example.com/in")
    url = recover_url(registry, registry.alice.id, webhook["id"])
    resp = await registry.http.post(url, json=body, headers=registry.alice.auth())
    assert resp.status == 400, await resp.text()
    error = (await resp.json())["error"]
    assert error["details"][0]["field"] == field
    assert message in error["details"][0]["message"]
    assert await jobs_count(pool) == 0


async def test_a_recovery_is_202_with_a_queued_job_readable_by_any_role_of_its_account(
    registry, pool, topics
):
    webhook = await create_webhook(registry, "https://hooks.example.com/in")
    url = recover_url(registry, registry.alice.id, webhook["id"])
    resp = await registry.http.post(url, json={"since": PAST}, headers=registry.alice.auth())
    assert resp.status == 202, await resp.text()
    job = (await resp.json())["data"]["job"]
    assert (job["kind"], job["webhook_id"], job["status"]) == ("recover", webhook["id"], "queued")
    assert (job["total"], job["done"], job["since"]) == (0, 0, PAST)
    for role in Role:
        seen = await registry.http.get(
            job_url(registry, registry.alice.id, job["id"]), headers=registry.alice.auth(role)
        )
        assert seen.status == 200
        assert (await seen.json())["data"]["job"] == job
    order = await pool.fetchval(
        "SELECT convert_from(value, 'UTF8') FROM registry.outbox WHERE topic = $1",
        topics.deliveries,
    )
    assert '"type":"recover"' in order and job["id"] in order


async def test_another_account_gets_404_or_403_and_a_member_key_orders_nothing(registry, pool):
    webhook = await create_webhook(registry, "https://hooks.example.com/in")
    alice, bob = registry.alice, registry.bob
    own = recover_url(registry, alice.id, webhook["id"])
    resp = await registry.http.post(own, json={"since": PAST}, headers=alice.auth())
    job_id = (await resp.json())["data"]["job"]["id"]
    before = await jobs_count(pool)
    for role in Role:
        under_bob = 403 if role is Role.MEMBER else 404  # a MEMBER key writes nothing
        for url, expected in (
            (own, 403),  # alice's account with bob's key
            (recover_url(registry, bob.id, webhook["id"]), under_bob),  # alice's webhook
        ):
            resp = await registry.http.post(url, json={"since": PAST}, headers=bob.auth(role))
            assert resp.status == expected, (role, url, await resp.text())
        for url, expected in (
            (job_url(registry, alice.id, job_id), 403),
            (job_url(registry, bob.id, job_id), 404),
        ):
            resp = await registry.http.get(url, headers=bob.auth(role))
            assert resp.status == expected, (role, url)
            assert job_id not in await resp.text()
    member = await registry.http.post(own, json={"since": PAST}, headers=alice.auth(Role.MEMBER))
    assert member.status == 403
    unknown = await registry.http.get(
        job_url(registry, alice.id, str(uuid.uuid4())), headers=alice.auth()
    )
    assert unknown.status == 404
    assert await jobs_count(pool) == before


async def test_an_account_with_ten_jobs_running_is_refused_a_new_one_with_a_409(registry):
    webhook = await create_webhook(registry, "https://hooks.example.com/in")
    url = recover_url(registry, registry.alice.id, webhook["id"])
    for _ in range(10):
        resp = await registry.http.post(url, json={"since": PAST}, headers=registry.alice.auth())
        assert resp.status == 202
    resp = await registry.http.post(url, json={"since": PAST}, headers=registry.alice.auth())
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "too_many_jobs"
