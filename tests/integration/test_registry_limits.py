"""The registry against hostile tenants: input it refuses by name, quotas, rates, and one
envelope for every refusal. Real app, real Postgres, real HTTP."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from services.registry.app import ACCOUNTS, RegistryDeps, create_app
from services.registry.policy import Role
from services.registry.settings import RegistrySettings
from tests.support.tenants import seed_account

pytestmark = pytest.mark.integration

CODE = "export default async function(event) { return { ok: true }; }"
HOOK = {"url": "https://hooks.example.com/in", "events": ["participant.joined"]}
FLOW = {"name": "w", "events": ["participant.joined"], "code": CODE}


@pytest.fixture
def registry_settings(request, postgres_settings, kafka_settings) -> RegistrySettings:
    """The dev profile's, with what a test passes through `indirect` parametrization."""
    extra = getattr(request, "param", {})
    return RegistrySettings(
        postgres=postgres_settings, kafka=kafka_settings, allowed_http_hosts=None, **extra
    )


def settings(**values):
    return pytest.mark.parametrize("registry_settings", [values], indirect=True, ids=[""])


def workflows_url(registry, account) -> str:
    return f"{registry.url}/v1/accounts/{account.id}/workflows"


async def send(registry, method: str, url: str, raw: bytes | str, account=None):
    account = account or registry.alice
    resp = await registry.http.request(
        method, url, data=raw, headers={**account.auth(), "Content-Type": "application/json"}
    )
    return resp, await resp.json()


def assert_envelope(body: dict, code: str | None = None) -> None:
    assert body["success"] is False and body["data"] is None, body
    error = body["error"]
    assert isinstance(error["code"], str) and isinstance(error["message"], str), body
    assert isinstance(error["details"], list), body
    if code is not None:
        assert error["code"] == code, body


# --- tenant input ----------------------------------------------------------------------


@pytest.mark.parametrize("depth", [65, 5_000])
async def test_a_body_nested_deeper_than_64_is_a_400_not_a_500(registry, depth):
    raw = '{"url":"https://a.example.com","events":["participant.joined"],"x":'
    raw += "[" * depth + "]" * depth + "}"
    for url in (registry.webhooks_url(registry.alice), workflows_url(registry, registry.alice)):
        resp, body = await send(registry, "POST", url, raw)
        assert resp.status == 400, body
        assert_envelope(body)
        assert body["error"]["details"] == [
            {"field": "body", "message": "JSON nested deeper than 64 levels"}
        ]


async def test_a_number_python_cannot_read_is_a_400_not_a_500(registry):
    raw = '{"url":"https://a.example.com","events":["participant.joined"],"retrySchedule":['
    raw += "9" * 5_000 + "]}"  # past Python's 4,300-digit int conversion limit
    resp, body = await send(registry, "POST", registry.webhooks_url(registry.alice), raw)
    assert resp.status == 400, body
    assert_envelope(body, "invalid_body")


async def test_nul_and_lone_surrogates_in_any_text_are_a_400_naming_the_field(registry, pool):
    alice = registry.alice
    seeded = await seed_account(registry, pool, alice)
    hooks = registry.webhooks_url(alice)
    one_hook = registry.webhooks_url(alice, seeded.webhook["id"])
    flows = workflows_url(registry, alice)
    one_flow = f"{flows}/{seeded.workflow['id']}"
    cases = [
        ("POST", hooks, {**HOOK, "url": "https://a.example.com/\\ud800"}, ["url"]),
        ("POST", hooks, {**HOOK, "events": ["participant.joined\\u0000"]}, ["events[0]"]),
        ("POST", hooks, {**HOOK, "events": ["\\udc00"]}, ["events[0]"]),
        ("POST", hooks, {**HOOK, "roomId": "r\\u0000"}, ["roomId"]),
        ("PUT", one_hook, {**HOOK, "name": "\\ud83d"}, ["name"]),
        ("PATCH", one_hook, {"url": "https://a.example.com/\\u0000"}, ["url"]),
        # A key the models do not know is still named (escaped), not echoed as it is.
        ("PATCH", one_hook, {"na\\ud800me": "x"}, ["na\\ud800me"]),
        ("POST", flows, {**FLOW, "code": CODE + "//\\u0000"}, ["code"]),
        ("PATCH", one_flow, {"events": ["participant.joined", "\\ud800"]}, ["events[1]"]),
    ]
    for method, url, body, fields in cases:
        # Escapes written into the JSON text by hand: json.dumps would refuse the surrogates.
        raw = json.dumps(body).replace("\\\\u", "\\u")
        resp, answer = await send(registry, method, url, raw)
        assert resp.status == 400, (method, raw, answer)
        assert_envelope(answer, "validation_error")
        assert [d["field"] for d in answer["error"]["details"]] == fields, (raw, answer)


async def test_a_private_address_is_refused_as_one_not_for_its_scheme(registry):
    resp, body = await send(
        registry,
        "POST",
        registry.webhooks_url(registry.alice),
        json.dumps({**HOOK, "url": "http://10.0.0.1"}),
    )
    assert resp.status == 400
    [detail] = body["error"]["details"]
    assert detail["field"] == "url"
    assert "10.0.0.1 is a private address" in detail["message"]
    assert "https" not in detail["message"]


# --- one envelope for every refusal ----------------------------------------------------


async def test_every_refusal_wears_the_envelope_with_details_as_a_list(registry):
    alice = registry.alice
    hooks = registry.webhooks_url(alice)
    cases = [
        ("GET", f"{registry.url}/v1/nothing-here", None, alice.auth(), 404),
        ("DELETE", f"{registry.url}/v1/event-types", None, {}, 405),
        ("GET", hooks + "?cursor=not-a-cursor", None, alice.auth(), 400),
        ("GET", hooks, None, {}, 401),
        ("GET", registry.webhooks_url(registry.bob), None, alice.auth(), 403),
        ("GET", registry.webhooks_url(alice, "0" * 8), None, alice.auth(), 404),
        ("POST", hooks, b"{", alice.auth(), 400),
        ("POST", hooks, b"", alice.auth(), 400),
        ("POST", hooks, b"x" * (3 * 1024 * 1024), alice.auth(), 413),
    ]
    for method, url, data, headers, status in cases:
        resp = await registry.http.request(method, url, data=data, headers=headers)
        assert resp.status == status, (method, url, await resp.text())
        assert resp.content_type == "application/json", (method, url)
        assert_envelope(await resp.json())
    cursor = await (await registry.http.get(hooks + "?cursor=x", headers=alice.auth())).json()
    assert [d["field"] for d in cursor["error"]["details"]] == ["cursor"]


# --- quotas ----------------------------------------------------------------------------


@settings(webhooks_per_account=2)
async def test_webhooks_past_the_account_quota_are_refused_even_when_sent_at_once(registry):
    alice, bob = registry.alice, registry.bob

    async def create(account) -> tuple[int, dict]:
        resp = await registry.http.post(
            registry.webhooks_url(account), json=HOOK, headers=account.auth()
        )
        return resp.status, await resp.json()

    answers = await asyncio.gather(*(create(alice) for _ in range(6)))
    statuses = sorted(status for status, _ in answers)
    assert statuses == [201, 201, 409, 409, 409, 409]
    refused = next(body for status, body in answers if status == 409)
    assert_envelope(refused, "quota_exceeded")
    assert "2" in refused["error"]["message"]
    # Another account is not held back; a deleted webhook frees its place.
    assert (await create(bob))[0] == 201
    created = next(body for status, body in answers if status == 201)["data"]["webhook"]
    url = registry.webhooks_url(alice, created["id"])
    assert (await registry.http.delete(url, headers=alice.auth())).status == 200
    assert (await create(alice))[0] == 201


@settings(workflows_per_account=1)
async def test_workflows_past_the_account_quota_are_refused(registry):
    body = {"name": "w", "events": ["participant.joined"], "code": CODE}
    url = workflows_url(registry, registry.alice)
    first = await registry.http.post(url, json=body, headers=registry.alice.auth())
    assert first.status == 201
    second = await registry.http.post(url, json=body, headers=registry.alice.auth())
    assert second.status == 409
    assert_envelope(await second.json(), "quota_exceeded")


async def test_code_at_the_size_limit_fits_the_body_however_json_escapes_it(registry):
    """Control characters are six bytes each once escaped (`\\u0001`): 256 KiB of them in a
    comment is a 1.5 MiB body, which the body limit leaves room for."""
    head = CODE + "\n//"
    code = head + "\x01" * (256 * 1024 - len(head))
    resp = await registry.http.post(
        workflows_url(registry, registry.alice),
        json={"name": "big", "events": ["participant.joined"], "code": code},
        headers=registry.alice.auth(),
    )
    assert resp.status == 201, (await resp.text())[:500]


@settings(workflow_code_max_bytes=1_000)
async def test_code_over_the_size_limit_is_a_400_naming_the_code(registry):
    code = CODE + "//" + "é" * 500  # 1,000 characters or fewer, more than 1,000 bytes
    resp = await registry.http.post(
        workflows_url(registry, registry.alice),
        json={"name": "big", "events": ["participant.joined"], "code": code},
        headers=registry.alice.auth(),
    )
    body = await resp.json()
    assert resp.status == 400
    [detail] = body["error"]["details"]
    assert detail["field"] == "code" and "at most 1,000 bytes" in detail["message"]


# --- rates -----------------------------------------------------------------------------


@settings(api_burst=3, api_rate_per_s=0.01)
async def test_a_key_past_its_rate_gets_429_with_retry_after_and_ratelimit_headers(registry):
    alice, bob = registry.alice, registry.bob
    url = registry.webhooks_url(alice)
    answers = [await registry.http.get(url, headers=alice.auth()) for _ in range(3)]
    assert [r.status for r in answers] == [200, 200, 200]
    assert [r.headers["RateLimit-Remaining"] for r in answers] == ["2", "1", "0"]
    assert all(r.headers["RateLimit-Limit"] == "3" for r in answers)

    refused = await registry.http.get(url, headers=alice.auth())
    assert refused.status == 429
    assert_envelope(await refused.json(), "rate_limited")
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert int(refused.headers["RateLimit-Reset"]) >= int(refused.headers["Retry-After"])
    # Each key has its own bucket: another key of the same account, and another account's.
    assert (await registry.http.get(url, headers=alice.auth(Role.ADMIN))).status == 200
    bob_url = registry.webhooks_url(bob)
    assert (await registry.http.get(bob_url, headers=bob.auth())).status == 200


@settings(unknown_key_burst=3, unknown_key_rate_per_s=0.01)
async def test_an_address_sending_bad_keys_is_refused_before_any_key_lookup(registry):
    alice = registry.alice
    url = registry.webhooks_url(alice)
    # Valid keys never spend the address's bucket.
    for _ in range(5):
        assert (await registry.http.get(url, headers=alice.auth())).status == 200
    bad = [{}, {"Authorization": "Bearer rhk_guess-1"}, {"Authorization": "Bearer rhk_guess-2"}]
    assert [(await registry.http.get(url, headers=h)).status for h in bad] == [401, 401, 401]
    refused = await registry.http.get(url, headers={"Authorization": "Bearer rhk_guess-3"})
    assert refused.status == 429 and "Retry-After" in refused.headers
    assert_envelope(await refused.json(), "rate_limited")
    # Refused before the lookup: a valid key this registry has not seen is not looked up now
    # either, while one it has seen valid still is (honest clients behind the same proxy).
    assert (await registry.http.get(url, headers=alice.auth(Role.MEMBER))).status == 429
    assert (await registry.http.get(url, headers=alice.auth())).status == 200


@settings(webhook_sends_burst=2, webhook_sends_rate_per_s=0.01)
async def test_test_pings_and_redeliveries_are_limited_per_webhook(registry, pool):
    alice = registry.alice
    seeded = await seed_account(registry, pool, alice)
    hook = registry.webhooks_url(alice, seeded.webhook["id"])
    redeliver = f"{hook}/deliveries/{seeded.delivery_id}/redeliver"
    assert (await registry.http.post(hook + "/test", headers=alice.auth())).status == 202
    assert (await registry.http.post(redeliver, headers=alice.auth())).status == 202
    for url in (hook + "/test", redeliver):
        refused = await registry.http.post(url, headers=alice.auth())
        assert refused.status == 429 and int(refused.headers["Retry-After"]) >= 1
        assert_envelope(await refused.json(), "rate_limited")
    other = await registry.http.post(registry.webhooks_url(alice), json=HOOK, headers=alice.auth())
    other_id = (await other.json())["data"]["webhook"]["id"]
    ping = await registry.http.post(
        registry.webhooks_url(alice, other_id) + "/test", headers=alice.auth()
    )
    assert ping.status == 202


# --- code checks: bounded, and never inside a transaction -------------------------------


class HeldCheck:
    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, code: str, language: str) -> None:
        self.started.set()
        await self.release.wait()


async def test_code_checks_wait_in_a_short_queue_then_503_and_hold_no_transaction(
    pool, producer, postgres_settings, kafka_settings
):
    held = HeldCheck()
    app = create_app(
        RegistrySettings(
            postgres=postgres_settings,
            kafka=kafka_settings,
            code_checks_at_once=1,
            code_checks_queued=0,
        ),
        RegistryDeps(pool=pool, producer=producer, check_code=held),
    )
    accounts = app[ACCOUNTS]
    account_id = await accounts.create_account("alice")
    token = await accounts.create_key(account_id, Role.OWNER)
    auth = {"Authorization": f"Bearer {token}"}
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with ClientSession() as http:
            url = f"{str(server.make_url('')).rstrip('/')}/v1/accounts/{account_id}/workflows"
            body = {"name": "w", "events": ["participant.joined"], "code": CODE}
            held.release.set()
            created = await http.post(url, json=body, headers=auth)
            workflow_id = (await created.json())["data"]["workflow"]["id"]
            held.release.clear()
            held.started.clear()

            patch = asyncio.create_task(
                http.patch(f"{url}/{workflow_id}", json={"code": CODE + "//2"}, headers=auth)
            )
            await held.started.wait()
            busy = await http.post(url, json=body, headers=auth)
            assert busy.status == 503 and busy.headers["Retry-After"] == "1"
            assert_envelope(await busy.json(), "busy")
            # While the check runs, no connection of this database sits in a transaction.
            in_transaction = await pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND state LIKE 'idle in transaction%'"
            )
            assert in_transaction == 0
            held.release.set()
            patched = await patch
            assert patched.status == 200
            assert (await patched.json())["data"]["workflow"]["version"] == 2
    finally:
        await server.close()


def cursor(stamp: str) -> str:
    raw = f"{stamp}|{uuid.UUID(int=0)}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


async def test_nul_and_broken_encodings_in_the_path_and_query_are_refused_in_the_envelope(
    registry, pool
):
    alice = registry.alice
    seeded = await seed_account(registry, pool, alice)
    hooks = registry.webhooks_url(alice)
    deliveries = registry.webhooks_url(alice, seeded.webhook["id"]) + "/deliveries"
    cases = [
        (hooks + "?cursor=%00", 400),
        (hooks + "?cursor=%ED%A0%80", 400),
        # Well-formed cursors whose instants fall outside what a timestamp holds in UTC.
        (hooks + "?cursor=" + cursor("0001-01-01T00:00:00+14:00"), 400),
        (hooks + "?cursor=" + cursor("9999-12-31T23:59:59-14:00"), 400),
        (hooks + "?limit=%00", 400),
        (hooks + "?limit=" + "9" * 5_000, 400),
        (deliveries + "?status=%00", 400),
        (deliveries + "?status=%ff", 400),
        (hooks + "/%00", 404),
        (hooks + "/%ED%A0%80", 404),
        (f"{registry.url}/v1/accounts/%00/webhooks", 403),
    ]
    for url, status in cases:
        resp = await registry.http.get(url, headers=alice.auth())
        assert resp.status == status, (url, await resp.text())
        assert_envelope(await resp.json())
