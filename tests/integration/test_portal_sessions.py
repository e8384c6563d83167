"""Customer portal sessions through the real registry on real Postgres: a link made by an OWNER
or ADMIN key, exchanged once for a session that manages the account's webhooks (all, or those
listed and those it creates), read-only or not, until the link's expiry; audited as the portal;
and what bad input gets. Every route's scope is walked in test_tenancy.py."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from services.registry.app import ACCOUNTS, RELAY, RegistryDeps, create_app
from services.registry.code_check import deno_code_check
from services.registry.policy import Role
from services.registry.settings import RegistrySettings
from shared.events import format_timestamp
from tests.integration.conftest import Account, Registry
from tests.support.portal import bearer, exchange, link_token, portal_link, portal_session

pytestmark = pytest.mark.integration

PORTAL_ONLY = "portal sessions may manage webhooks only"


class Clock:
    """The registry's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def registry_settings(postgres_settings, kafka_settings, request) -> RegistrySettings:
    """The dev profile's; a test changes some with indirect parametrization."""
    return RegistrySettings(
        postgres=postgres_settings,
        kafka=kafka_settings,
        allowed_http_hosts=None,
        **getattr(request, "param", {}),
    )


@pytest.fixture
async def registry(pool, producer, registry_settings, clock) -> AsyncIterator[Registry]:
    """conftest's registry, on the test's clock."""
    app = create_app(
        registry_settings,
        RegistryDeps(pool=pool, producer=producer, check_code=deno_code_check, clock=clock),
    )
    accounts = app[ACCOUNTS]

    async def account(name: str) -> Account:
        account_id = await accounts.create_account(name)
        keys = [await accounts.create_key(account_id, role) for role in Role]
        return Account(str(account_id), *keys)

    alice, bob = await account("alice"), await account("bob")
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    async with ClientSession() as http:
        yield Registry(str(server.make_url("")).rstrip("/"), http, app, app[RELAY], alice, bob)
    await server.close()


def sessions_url(registry, account) -> str:
    return f"{registry.url}/v1/accounts/{account.id}/portal-sessions"


async def call(registry, method: str, path: str, token: str, **kwargs) -> tuple[int, Any]:
    resp = await registry.http.request(method, registry.url + path, headers=bearer(token), **kwargs)
    return resp.status, await resp.json()


async def new_webhook(registry, account, **fields) -> dict[str, Any]:
    body = {"url": "https://hooks.example.com/in", "events": ["participant.joined"], **fields}
    resp = await registry.http.post(
        registry.webhooks_url(account), json=body, headers=account.auth()
    )
    assert resp.status == 201, await resp.text()
    return (await resp.json())["data"]["webhook"]


async def key_id(registry, token: str) -> str:
    status, me = await call(registry, "GET", "/v1/me", token)
    assert status == 200
    return me["data"]["key_id"]


def sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def test_a_link_is_made_with_the_defaults_stored_as_a_digest_and_audited(
    registry, pool, clock
):
    alice = registry.alice
    link = await portal_link(registry, alice)
    token = link_token(link["url"])
    assert link["url"] == f"http://127.0.0.1:8080/console/portal#token={token}"
    assert token.startswith("rhl_") and len(token) > 40
    assert link["expires_at"] == format_timestamp(clock.now + timedelta(seconds=3600))
    row = await pool.fetchrow(
        "SELECT * FROM registry.portal_sessions WHERE account_id = $1", uuid.UUID(alice.id)
    )
    owner_id = await key_id(registry, alice.owner)
    assert (row["webhook_ids"], row["read_only"], row["link_used_at"]) == (None, False, None)
    assert (row["link_hash"], row["session_hash"]) == (sha256(token), None)
    assert str(row["created_by"]) == owner_id
    assert token not in repr(dict(row))
    audit = await pool.fetchrow(
        "SELECT actor, key_id::text, target_id, changes::text FROM registry.audit_log"
        " WHERE account_id = $1 AND action = 'portal_session.created'",
        uuid.UUID(alice.id),
    )
    assert (audit["actor"], audit["key_id"], audit["target_id"]) == (
        "key",
        owner_id,
        str(row["id"]),
    )
    assert token not in audit["changes"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"ttlSeconds": 59}, "ttlSeconds"),
        ({"ttlSeconds": 86_401}, "ttlSeconds"),
        ({"ttlSeconds": "3600"}, "ttlSeconds"),
        ({"ttlSeconds": 3600.5}, "ttlSeconds"),
        ({"ttlSeconds": True}, "ttlSeconds"),
        ({"readOnly": "yes"}, "readOnly"),
        ({"readOnly": 1}, "readOnly"),
        ({"webhookIds": "all"}, "webhookIds"),
        ({"webhookIds": ["not-a-uuid"]}, "webhookIds[0]"),
        ({"webhookIds": [7]}, "webhookIds[0]"),
        ({"webhookIds": [str(uuid.uuid4()) for _ in range(101)]}, "webhookIds"),
        ({"webhookIds": [str(uuid.UUID(int=1))] * 2}, "webhookIds"),
        ({"webhookIds": [str(uuid.uuid4())]}, "webhookIds[0]"),  # no webhook at all
        ({"token": "x"}, "token"),
        ([], "body"),
    ],
)
async def test_a_bad_body_is_a_400_naming_the_field_and_makes_nothing(registry, pool, body, field):
    resp = await registry.http.post(
        sessions_url(registry, registry.alice), json=body, headers=registry.alice.auth()
    )
    answer = await resp.json()
    assert resp.status == 400, answer
    assert [d["field"] for d in answer["error"]["details"]] == [field]
    assert await pool.fetchval("SELECT count(*) FROM registry.portal_sessions") == 0


async def test_another_accounts_webhook_is_refused_naming_its_place_in_the_list(registry, pool):
    alice, bob = registry.alice, registry.bob
    mine, theirs = await new_webhook(registry, alice), await new_webhook(registry, bob)
    resp = await registry.http.post(
        sessions_url(registry, alice),
        json={"webhookIds": [mine["id"], theirs["id"]]},
        headers=alice.auth(),
    )
    answer = await resp.json()
    assert resp.status == 400
    assert answer["error"]["details"] == [
        {"field": "webhookIds[1]", "message": "no such webhook in this account"}
    ]
    assert await pool.fetchval("SELECT count(*) FROM registry.portal_sessions") == 0


async def test_owner_and_admin_keys_make_links_and_neither_a_member_nor_a_session_does(registry):
    alice = registry.alice
    for role, expected in ((Role.OWNER, 201), (Role.ADMIN, 201), (Role.MEMBER, 403)):
        resp = await registry.http.post(sessions_url(registry, alice), headers=alice.auth(role))
        assert resp.status == expected, role
    session = await portal_session(registry, alice)
    resp = await registry.http.post(sessions_url(registry, alice), json={}, headers=bearer(session))
    answer = await resp.json()
    assert (resp.status, answer["error"]["message"]) == (403, PORTAL_ONLY)


async def test_a_link_is_exchanged_once_for_a_session_token_stored_as_a_digest(registry, pool):
    alice = registry.alice
    webhook = await new_webhook(registry, alice)
    link = await portal_link(registry, alice, webhookIds=[webhook["id"]], readOnly=True)
    status, answer = await exchange(registry, link_token(link["url"]))
    assert status == 200, answer
    data = answer["data"]
    token = data.pop("session_token")
    assert token.startswith("rhp_") and len(token) > 40
    assert data == {
        "expires_at": link["expires_at"],
        "account_id": alice.id,
        "webhook_ids": [webhook["id"]],
        "read_only": True,
    }
    row = await pool.fetchrow("SELECT * FROM registry.portal_sessions")
    assert row["session_hash"] == sha256(token) and row["link_used_at"] is not None
    assert token not in repr(dict(row))

    status, again = await exchange(registry, link_token(link["url"]))
    assert (status, again["error"]["message"]) == (
        401,
        "this portal link was already used: ask for a new one",
    )
    status, unknown = await exchange(registry, "rhl_" + "A" * 43)
    assert (status, unknown["error"]["message"]) == (401, "this portal link is not valid")
    for refused in (again, unknown):
        assert alice.id not in str(refused) and webhook["id"] not in str(refused)


async def test_two_exchanges_of_one_link_at_once_make_one_session(registry, pool):
    link = await portal_link(registry, registry.alice)
    token = link_token(link["url"])
    answers = await asyncio.gather(*(exchange(registry, token) for _ in range(4)))
    assert sorted(status for status, _ in answers) == [200, 401, 401, 401]


async def test_an_expired_link_is_refused_and_a_session_expires_with_its_link(registry, clock):
    alice = registry.alice
    stale = await portal_link(registry, alice, ttlSeconds=60)
    fresh = await portal_link(registry, alice, ttlSeconds=120)
    clock.advance(61)
    status, answer = await exchange(registry, link_token(stale["url"]))
    assert (status, answer["error"]["message"]) == (
        401,
        "this portal link has expired: ask for a new one",
    )
    status, answer = await exchange(registry, link_token(fresh["url"]))
    assert status == 200
    session = answer["data"]["session_token"]
    assert (await call(registry, "GET", "/v1/me", session))[0] == 200
    clock.advance(60)
    for path in ("/v1/me", f"/v1/accounts/{alice.id}/webhooks"):
        status, answer = await call(registry, "GET", path, session)
        assert (status, answer["error"]["message"]) == (401, "this portal session has expired")


async def test_me_answers_a_portal_session_and_a_key_with_their_kind(registry):
    alice = registry.alice
    webhook = await new_webhook(registry, alice)
    link = await portal_link(registry, alice, webhookIds=[webhook["id"]], readOnly=True)
    status, answer = await exchange(registry, link_token(link["url"]))
    status, me = await call(registry, "GET", "/v1/me", answer["data"]["session_token"])
    assert status == 200
    assert me["data"] == {
        "account_id": alice.id,
        "kind": "portal",
        "role": None,
        "read_only": True,
        "webhook_ids": [webhook["id"]],
        "expires_at": link["expires_at"],
    }
    status, me = await call(registry, "GET", "/v1/me", alice.member)
    assert (me["data"]["kind"], me["data"]["role"]) == ("key", "MEMBER")


async def test_a_limited_session_manages_its_webhooks_and_those_it_creates_only(registry, pool):
    alice = registry.alice
    base = f"/v1/accounts/{alice.id}"
    mine, other = await new_webhook(registry, alice), await new_webhook(registry, alice)
    session = await portal_session(registry, alice, webhookIds=[mine["id"]])

    async def listed() -> set[str]:
        status, page = await call(registry, "GET", f"{base}/webhooks", session)
        assert status == 200
        return {w["id"] for w in page["data"]["webhooks"]}

    assert await listed() == {mine["id"]}
    assert (await call(registry, "GET", f"{base}/webhooks/{mine['id']}", session))[0] == 200
    for method, suffix in (("GET", ""), ("PATCH", ""), ("DELETE", ""), ("GET", "/deliveries")):
        status, answer = await call(
            registry, method, f"{base}/webhooks/{other['id']}{suffix}", session, json={}
        )
        assert (status, answer["error"]["code"]) == (404, "not_found"), (method, suffix)
    status, patched = await call(
        registry, "PATCH", f"{base}/webhooks/{mine['id']}", session, json={"name": "renamed"}
    )
    assert (status, patched["data"]["webhook"]["name"]) == (200, "renamed")

    body = {"url": "https://hooks.example.com/new", "events": ["participant.left"]}
    status, created = await call(registry, "POST", f"{base}/webhooks", session, json=body)
    assert status == 201, created
    new_id = created["data"]["webhook"]["id"]
    assert await listed() == {mine["id"], new_id}
    stored = await pool.fetchval("SELECT webhook_ids FROM registry.portal_sessions")
    assert {str(i) for i in stored} == {mine["id"], new_id}

    # What it changed is audited as the portal, naming the session and the key that made it.
    session_id = await pool.fetchval("SELECT id FROM registry.portal_sessions")
    status, log = await call(registry, "GET", f"{base}/audit-log", alice.owner)
    by_action = {e["action"]: e for e in log["data"]["entries"] if e["actor"] == "portal"}
    assert set(by_action) == {"webhook.created", "webhook.updated"}
    created_entry = by_action["webhook.created"]
    assert created_entry["target_id"] == new_id
    assert created_entry["portal_session_id"] == str(session_id)
    assert created_entry["key_id"] == await key_id(registry, alice.owner)

    # Jobs: its webhooks' recoveries only.
    recover = {"since": "2020-01-01T00:00:00Z"}
    status, job = await call(
        registry, "POST", f"{base}/webhooks/{mine['id']}/recover", session, json=recover
    )
    assert status == 202, job
    job_path = f"{base}/jobs/{job['data']['job']['id']}"
    assert (await call(registry, "GET", job_path, session))[0] == 200
    resp = await registry.http.post(
        registry.webhooks_url(alice, other["id"]) + "/recover", json=recover, headers=alice.auth()
    )
    other_job = (await resp.json())["data"]["job"]["id"]
    assert (await call(registry, "GET", f"{base}/jobs/{other_job}", session))[0] == 404

    # Off the webhooks, nothing.
    for path in ("/events", "/workflows", "/api-keys", "/audit-log"):
        status, answer = await call(registry, "GET", base + path, session)
        assert (status, answer["error"]["message"]) == (403, PORTAL_ONLY), path
    assert (await call(registry, "DELETE", f"{base}/webhooks/{new_id}", session))[0] == 200


async def test_a_read_only_session_reads_and_writes_nothing(registry, pool):
    alice = registry.alice
    base = f"/v1/accounts/{alice.id}"
    webhook = await new_webhook(registry, alice, headers={"X-Tenant-Token": "t0ken-value"})
    session = await portal_session(registry, alice, readOnly=True)
    hook = f"{base}/webhooks/{webhook['id']}"
    status, got = await call(registry, "GET", hook, session)
    assert status == 200 and got["data"]["webhook"]["headers"] == {"X-Tenant-Token": "****"}
    assert (await call(registry, "GET", f"{base}/webhooks", session))[0] == 200
    before = await pool.fetchval(
        "SELECT revision FROM registry.webhooks WHERE id = $1", uuid.UUID(webhook["id"])
    )
    writes = [
        (
            "POST",
            f"{base}/webhooks",
            {"url": "https://a.example.com", "events": ["participant.joined"]},
        ),
        ("PATCH", hook, {"name": "x"}),
        ("PUT", hook, {"url": "https://a.example.com", "events": ["participant.joined"]}),
        ("POST", hook + "/rotate-secret", {}),
        ("POST", hook + "/test", None),
        ("POST", hook + "/recover", {"since": "2020-01-01T00:00:00Z"}),
        ("DELETE", hook, None),
    ]
    for method, path, body in writes:
        status, answer = await call(registry, method, path, session, json=body)
        assert (status, answer["error"]["message"]) == (
            403,
            "this portal session is read-only",
        ), path
    after = await pool.fetchval(
        "SELECT revision FROM registry.webhooks WHERE id = $1", uuid.UUID(webhook["id"])
    )
    assert after == before
    assert await pool.fetchval("SELECT count(*) FROM registry.webhooks") == 1


@pytest.mark.parametrize(
    "registry_settings",
    [
        {
            "api_burst": 3,
            "api_rate_per_s": 0.001,
            "unknown_key_burst": 3,
            "unknown_key_rate_per_s": 0.001,
        }
    ],
    indirect=True,
)
async def test_a_session_spends_a_bucket_of_its_own_and_bad_links_spend_the_address(registry):
    alice = registry.alice
    session = await portal_session(registry, alice)
    statuses = [(await call(registry, "GET", "/v1/me", session))[0] for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    resp = await registry.http.get(f"{registry.url}/v1/me", headers=alice.auth(Role.MEMBER))
    assert resp.status == 200  # a key's bucket is its own

    good = link_token((await portal_link(registry, alice))["url"])
    bad = [(await exchange(registry, f"rhl_guess-{n}"))[0] for n in range(4)]
    assert bad == [401, 401, 401, 429]
    # The address is refused before any lookup, a good link too, until its bucket refills.
    resp = await registry.http.post(
        f"{registry.url}/v1/portal-sessions/exchange", json={"token": good}
    )
    assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1
