"""API keys through the real registry on real Postgres: revoked keys refused by every replica at
once, the last OWNER key kept even when two owners revoke each other at the same moment,
expired keys refused, use written to the minute beside the API, and what bad input gets."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from services.registry.accounts.repository import PostgresAccounts
from services.registry.accounts.service import AccountService
from services.registry.accounts.usage import to_the_minute, usage_recorded
from services.registry.app import ACCOUNTS, RegistryDeps, create_app
from services.registry.code_check import deno_code_check
from services.registry.policy import Role
from tests.support.polling import eventually

pytestmark = pytest.mark.integration


def keys_url(registry, account=None, key_id: str = "") -> str:
    account_id = (account or registry.alice).id
    base = f"{registry.url}/v1/accounts/{account_id}/api-keys"
    return f"{base}/{key_id}" if key_id else base


async def key_id_of(registry, token: str) -> str:
    resp = await registry.http.get(
        f"{registry.url}/v1/me", headers={"Authorization": f"Bearer {token}"}
    )
    assert resp.status == 200, await resp.text()
    return (await resp.json())["data"]["key_id"]


async def status_of(registry, url: str, token: str, method: str = "GET", **kwargs) -> int:
    resp = await registry.http.request(
        method, url, headers={"Authorization": f"Bearer {token}"}, **kwargs
    )
    return resp.status


@pytest.fixture
async def second_replica(registry, pool, producer, registry_settings) -> AsyncIterator[str]:
    """Another registry on the same database, as a second replica is: its base URL."""
    app = create_app(
        registry_settings, RegistryDeps(pool=pool, producer=producer, check_code=deno_code_check)
    )
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()


async def test_a_created_key_is_listed_without_its_secret_and_revoked_on_every_replica(
    registry, second_replica
):
    alice = registry.alice
    resp = await registry.http.post(
        keys_url(registry), json={"role": "ADMIN", "label": "deploy bot"}, headers=alice.auth()
    )
    assert resp.status == 201, await resp.text()
    created = (await resp.json())["data"]["api_key"]
    token = created["key"]
    me = f"{second_replica}/v1/me"
    assert await status_of(registry, me, token) == 200

    listed = await (await registry.http.get(keys_url(registry), headers=alice.auth())).json()
    entry = next(k for k in listed["data"]["api_keys"] if k["id"] == created["id"])
    assert entry == {k: v for k, v in created.items() if k != "key"}
    assert entry["prefix"] == token[:8] and token not in str(listed)

    resp = await registry.http.delete(
        keys_url(registry, key_id=created["id"]), headers=alice.auth()
    )
    assert resp.status == 200
    assert (await resp.json())["data"]["api_key"]["revoked_at"] is not None
    # No cache stands between a revoke and the next request, on either replica.
    assert await status_of(registry, me, token) == 401
    assert await status_of(registry, f"{registry.url}/v1/me", token) == 401


async def test_two_owners_revoking_each_other_at_once_leave_one_owner(registry, pool):
    alice = registry.alice
    other_owner = await registry.app[ACCOUNTS].create_key(uuid.UUID(alice.id), Role.OWNER)
    ids = {
        alice.owner: await key_id_of(registry, alice.owner),
        other_owner: await key_id_of(registry, other_owner),
    }
    async with pool.acquire() as blocker:
        # Hold both OWNER keys' rows, so that both revokes are in flight before either can
        # write: without the account's lock, each would see two owners and revoke.
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute(
            "SELECT 1 FROM registry.api_keys WHERE id = ANY($1::uuid[]) FOR UPDATE",
            list(ids.values()),
        )
        revokes = [
            asyncio.create_task(
                status_of(registry, keys_url(registry, key_id=ids[other]), mine, "DELETE")
            )
            for mine, other in ((alice.owner, other_owner), (other_owner, alice.owner))
        ]
        await eventually(lambda: waiting_on_locks(pool, 2))
        await tx.rollback()
        statuses = await asyncio.gather(*revokes)

    assert sorted(statuses) == [200, 409]
    live = await pool.fetchval(
        "SELECT count(*) FROM registry.api_keys"
        " WHERE account_id = $1 AND role = 'OWNER' AND revoked_at IS NULL",
        uuid.UUID(alice.id),
    )
    assert live == 1


async def waiting_on_locks(pool: asyncpg.Pool, count: int) -> bool:
    """At least `count` sessions of this database wait on a lock. (Read outside any
    transaction: within one, pg_stat_activity stays the snapshot first read.)"""
    waiting = await pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    return waiting >= count


async def test_the_last_owner_key_is_kept_and_other_roles_may_not_manage_keys(registry):
    alice = registry.alice
    owner_id = await key_id_of(registry, alice.owner)
    resp = await registry.http.delete(keys_url(registry, key_id=owner_id), headers=alice.auth())
    body = await resp.json()
    assert (resp.status, body["error"]["code"]) == (409, "last_owner_key")
    for role in (Role.ADMIN, Role.MEMBER):
        resp = await registry.http.get(keys_url(registry), headers=alice.auth(role))
        assert resp.status == 403
    # Another account's key ids are not found from this account, and its path is forbidden.
    bob_owner_id = await key_id_of(registry, registry.bob.owner)
    resp = await registry.http.delete(keys_url(registry, key_id=bob_owner_id), headers=alice.auth())
    assert resp.status == 404
    resp = await registry.http.get(keys_url(registry, registry.bob), headers=alice.auth())
    assert resp.status == 403


async def test_an_expired_key_gets_401(registry, pool):
    alice = registry.alice
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    then = AccountService(PostgresAccounts(pool), clock=lambda: an_hour_ago)
    minted = await then.mint_key(
        uuid.UUID(alice.id), Role.ADMIN, expires_at=an_hour_ago + timedelta(minutes=30)
    )
    resp = await registry.http.get(
        f"{registry.url}/v1/me", headers={"Authorization": f"Bearer {minted.token}"}
    )
    assert (resp.status, (await resp.json())["error"]["code"]) == (401, "unauthorized")
    listed = await (await registry.http.get(keys_url(registry), headers=alice.auth())).json()
    assert minted.key.id in {uuid.UUID(k["id"]) for k in listed["data"]["api_keys"]}


async def test_use_is_written_to_the_minute_beside_the_api(registry, pool):
    alice = registry.alice
    accounts = registry.app[ACCOUNTS]
    member_id = uuid.UUID(await key_id_of(registry, alice.member))

    async def last_used() -> datetime | None:
        return await pool.fetchval(
            "SELECT last_used_at FROM registry.api_keys WHERE id = $1", member_id
        )

    async with usage_recorded(accounts.record_usage, every_s=0.05):
        written = await eventually(last_used)
    assert written.second == 0 and written.microsecond == 0
    assert written <= datetime.now(UTC) < written + timedelta(minutes=2)
    await key_id_of(registry, alice.member)
    noted = await accounts.record_usage()
    if to_the_minute(datetime.now(UTC)) == written:  # used again in the same minute
        assert noted == 0  # already stored: no second write


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"role": "GOD"}, "role"),
        ({"role": "MEMBER", "label": "x" * 101}, "label"),
        ({"role": "MEMBER", "label": "tab\there"}, "label"),
        ({"role": "MEMBER", "expiresAt": "2001-01-01T00:00:00Z"}, "expiresAt"),
        ({"role": "MEMBER", "expiresAt": "tomorrow"}, "expiresAt"),
        ({"role": "MEMBER", "expiresAt": "9999-12-31T23:59:59-23:59"}, "expiresAt"),
        ({"role": "MEMBER", "id": str(uuid.uuid4())}, "id"),
    ],
)
async def test_bad_input_gets_a_400_naming_the_field_and_stores_nothing(
    registry, pool, body, field
):
    before = await pool.fetchval("SELECT count(*) FROM registry.api_keys")
    resp = await registry.http.post(keys_url(registry), json=body, headers=registry.alice.auth())
    answer = await resp.json()
    assert resp.status == 400, answer
    assert [d["field"] for d in answer["error"]["details"]] == [field]
    assert await pool.fetchval("SELECT count(*) FROM registry.api_keys") == before


@pytest.mark.parametrize(
    ("query", "field"), [("limit=0", "limit"), ("limit=x", "limit"), ("cursor=nope", "cursor")]
)
async def test_a_bad_list_query_gets_a_400_naming_it(registry, query, field):
    resp = await registry.http.get(f"{keys_url(registry)}?{query}", headers=registry.alice.auth())
    answer = await resp.json()
    assert resp.status == 400
    assert [d["field"] for d in answer["error"]["details"]] == [field]


async def test_revoking_a_key_id_that_is_not_one_is_a_404(registry):
    for key_id in ("not-a-uuid", str(uuid.uuid4())):
        resp = await registry.http.delete(
            keys_url(registry, key_id=key_id), headers=registry.alice.auth()
        )
        assert resp.status == 404
