"""The API-key routes and /v1/me over aiohttp's test client, on the in-memory repository: who
may call them, what bad input gets, and that no answer but a create's holds a key."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from services.registry.accounts.routes import KeyRoutes
from services.registry.accounts.service import AccountService
from services.registry.auth import Authorizer
from services.registry.http import build_middlewares
from services.registry.metrics import RegistryMetrics
from services.registry.policy import Role
from tests.support.registry_fakes import FakeAccounts
from tests.unit.test_registry_keys import T0, Clock


@dataclass
class Api:
    client: TestClient
    accounts: AccountService
    clock: Clock
    account_id: str
    tokens: dict[Role, str]

    def keys_url(self, key_id: str = "") -> str:
        base = f"/v1/accounts/{self.account_id}/api-keys"
        return f"{base}/{key_id}" if key_id else base

    async def call(
        self, method: str, url: str, *, token: str | None = None, json: Any = None
    ) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        resp = await self.client.request(method, url, json=json, headers=headers)
        return resp.status, await resp.json()


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    clock = Clock()
    accounts = AccountService(FakeAccounts(), clock=clock)
    metrics = RegistryMetrics.create()
    app = web.Application(middlewares=build_middlewares(metrics.requests, metrics.latency))
    KeyRoutes(Authorizer(accounts), accounts, page_size_max=100).register(app)
    account_id = await accounts.create_account("acme")
    tokens = {role: await accounts.create_key(account_id, role) for role in Role}
    async with TestClient(TestServer(app)) as client:
        yield Api(client, accounts, clock, str(account_id), tokens)


async def test_an_owner_creates_a_key_that_works_and_is_never_shown_again(api):
    owner = api.tokens[Role.OWNER]
    status, body = await api.call(
        "POST", api.keys_url(), token=owner, json={"role": "MEMBER", "label": "dashboard"}
    )
    assert status == 201
    created = body["data"]["api_key"]
    token = created.pop("key")
    assert created["prefix"] == token[:8] and created["label"] == "dashboard"

    status, me = await api.call("GET", "/v1/me", token=token)
    assert status == 200
    assert me["data"] == {
        "account_id": api.account_id,
        "kind": "key",
        "key_id": created["id"],
        "role": "MEMBER",
        "label": "dashboard",
    }
    status, listed = await api.call("GET", api.keys_url(), token=owner)
    assert status == 200 and created in listed["data"]["api_keys"]
    assert all(secret not in str(listed) for secret in (token, *api.tokens.values()))


@pytest.mark.parametrize("role", [Role.ADMIN, Role.MEMBER], ids=str)
async def test_only_owner_keys_list_create_or_revoke_keys(api, role):
    token = api.tokens[role]
    some_key = (await api.accounts.list_keys(uuid.UUID(api.account_id), limit=1, cursor=None)).keys
    for method, url, json in (
        ("GET", api.keys_url(), None),
        ("POST", api.keys_url(), {"role": "MEMBER"}),
        ("DELETE", api.keys_url(str(some_key[0].id)), None),
    ):
        status, body = await api.call(method, url, token=token, json=json)
        assert (status, body["error"]["code"]) == (403, "forbidden"), (method, url)
    status, me = await api.call("GET", "/v1/me", token=token)
    assert (status, me["data"]["role"]) == (200, role.value)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "role"),
        ({"role": "owner"}, "role"),
        ({"role": "ROOT"}, "role"),
        ({"role": "MEMBER", "label": ""}, "label"),
        ({"role": "MEMBER", "label": "x" * 101}, "label"),
        ({"role": "MEMBER", "label": "line\nbreak"}, "label"),
        ({"role": "MEMBER", "label": "evil\u202eexe.txt"}, "label"),
        ({"role": "MEMBER", "label": 7}, "label"),
        ({"role": "MEMBER", "expiresAt": "2020-01-01T00:00:00Z"}, "expiresAt"),
        ({"role": "MEMBER", "expiresAt": "2030-01-01"}, "expiresAt"),
        ({"role": "MEMBER", "expiresAt": "2030-01-01T00:00:00"}, "expiresAt"),
        ({"role": "MEMBER", "expiresAt": "2030-02-30T00:00:00Z"}, "expiresAt"),
        ({"role": "MEMBER", "expiresAt": 1893456000}, "expiresAt"),
        ({"role": "MEMBER", "key": "rhk_mine"}, "key"),
    ],
)
async def test_bad_input_is_a_400_naming_the_field_and_mints_nothing(api, body, field):
    before = await api.accounts.list_keys(uuid.UUID(api.account_id), limit=100, cursor=None)
    status, answer = await api.call("POST", api.keys_url(), token=api.tokens[Role.OWNER], json=body)
    assert status == 400, answer
    assert [d["field"] for d in answer["error"]["details"]] == [field]
    after = await api.accounts.list_keys(uuid.UUID(api.account_id), limit=100, cursor=None)
    assert after == before


async def test_a_revoked_key_gets_401_at_once(api):
    owner = api.tokens[Role.OWNER]
    status, me = await api.call("GET", "/v1/me", token=api.tokens[Role.MEMBER])
    status, body = await api.call("DELETE", api.keys_url(me["data"]["key_id"]), token=owner)
    assert status == 200 and body["data"]["api_key"]["revoked_at"] == "2026-05-01T12:00:30.000Z"
    status, body = await api.call("GET", "/v1/me", token=api.tokens[Role.MEMBER])
    assert (status, body["error"]["code"]) == (401, "unauthorized")


async def test_the_last_owner_key_is_kept_with_a_409_saying_why(api):
    owner = api.tokens[Role.OWNER]
    _, me = await api.call("GET", "/v1/me", token=owner)
    status, body = await api.call("DELETE", api.keys_url(me["data"]["key_id"]), token=owner)
    assert (status, body["error"]["code"]) == (409, "last_owner_key")
    assert "last live OWNER key" in body["error"]["message"]
    assert (await api.call("GET", "/v1/me", token=owner))[0] == 200


async def test_an_expired_key_gets_401(api):
    owner = api.tokens[Role.OWNER]
    expires = (T0 + timedelta(hours=1)).isoformat()
    _, body = await api.call(
        "POST", api.keys_url(), token=owner, json={"role": "ADMIN", "expiresAt": expires}
    )
    token = body["data"]["api_key"]["key"]
    assert body["data"]["api_key"]["expires_at"] == "2026-05-01T13:00:30.000Z"
    assert (await api.call("GET", "/v1/me", token=token))[0] == 200
    api.clock.now = T0 + timedelta(hours=1)
    assert (await api.call("GET", "/v1/me", token=token))[0] == 401


@pytest.mark.parametrize("key_id", ["not-a-uuid", str(uuid.uuid4())], ids=["not-a-uuid", "unknown"])
async def test_revoking_an_unknown_key_is_a_404(api, key_id):
    status, body = await api.call("DELETE", api.keys_url(key_id), token=api.tokens[Role.OWNER])
    assert (status, body["error"]["code"]) == (404, "not_found")


async def test_another_accounts_path_is_a_403(api):
    other = f"/v1/accounts/{uuid.uuid4()}/api-keys"
    status, body = await api.call("GET", other, token=api.tokens[Role.OWNER])
    assert (status, body["error"]["code"]) == (403, "forbidden")


async def test_me_without_a_key_is_a_401(api):
    status, body = await api.call("GET", "/v1/me")
    assert (status, body["error"]["code"]) == (401, "unauthorized")


async def test_requests_are_listed_as_last_used_to_the_minute_once_written(api):
    owner = api.tokens[Role.OWNER]
    for _ in range(3):
        await api.call("GET", "/v1/me", token=api.tokens[Role.MEMBER])
    _, listed = await api.call("GET", api.keys_url(), token=owner)
    assert {k["last_used_at"] for k in listed["data"]["api_keys"]} == {None}  # not yet written

    assert await api.accounts.record_usage() == 2  # the MEMBER's key and the OWNER's
    _, listed = await api.call("GET", api.keys_url(), token=owner)
    used = {k["role"]: k["last_used_at"] for k in listed["data"]["api_keys"]}
    assert used == {
        "OWNER": "2026-05-01T12:00:00.000Z",
        "MEMBER": "2026-05-01T12:00:00.000Z",
        "ADMIN": None,
    }
