"""The webhook API over real HTTP, on a real Postgres (and a real broker for the outbox)."""

from __future__ import annotations

import re
import uuid

import pytest

from services.registry.console import is_console_route
from services.registry.policy import Role
from shared.events import CATALOG

pytestmark = pytest.mark.integration

SEED_000_BODY = {
    "url": "http://127.0.0.1:9999/collab-webhook",
    "events": ["participant.joined", "participant.left"],
    "roomId": "c3003c93-60cf-4184-b85f-20be14d26dac",
}


async def create(registry, account=None, body=None, role=Role.OWNER):
    account = account or registry.alice
    resp = await registry.http.post(
        registry.webhooks_url(account), json=body or SEED_000_BODY, headers=account.auth(role)
    )
    return resp.status, await resp.json()


async def test_create_answers_201_with_the_envelope_and_a_64_hex_secret(registry):
    status, body = await create(registry)
    assert status == 201
    assert body["type"] == "response" and body["success"] is True and body["error"] is None
    assert body["description"] == "Webhook created"
    webhook = body["data"]["webhook"]
    assert re.fullmatch(r"[0-9a-f]{64}", webhook["secret"])
    assert webhook["organization_id"] == registry.alice.id
    assert webhook["url"] == SEED_000_BODY["url"]
    assert webhook["events"] == SEED_000_BODY["events"]
    assert webhook["room_id"] == SEED_000_BODY["roomId"]
    assert webhook["enabled"] is True
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", webhook["created_at"])
    assert webhook["created_at"] == webhook["updated_at"]


async def test_crud_behaves_as_in_003_and_only_the_201_carries_the_secret(registry):
    r, alice = registry, registry.alice
    _, created = await create(r)
    webhook = created["data"]["webhook"]
    secret, url = webhook["secret"], r.webhooks_url(alice, webhook["id"])
    bodies = []

    resp = await r.http.get(r.webhooks_url(alice), headers=alice.auth(Role.MEMBER))
    assert resp.status == 200
    listed = await resp.json()
    bodies.append(await resp.text())
    assert [w["id"] for w in listed["data"]["webhooks"]] == [webhook["id"]]
    assert listed["data"]["next_cursor"] is None

    resp = await r.http.get(url, headers=alice.auth(Role.MEMBER))
    bodies.append(await resp.text())
    got = (await resp.json())["data"]["webhook"]
    assert resp.status == 200 and got == {k: v for k, v in webhook.items() if k != "secret"}

    replacement = {"url": "https://hooks.example.com/new", "events": ["session.started"]}
    resp = await r.http.put(url, json=replacement, headers=alice.auth(Role.ADMIN))
    bodies.append(await resp.text())
    replaced = (await resp.json())["data"]["webhook"]
    assert resp.status == 200
    assert replaced["url"] == replacement["url"] and replaced["events"] == ["session.started"]
    assert replaced["room_id"] is None  # PUT replaces: the absent roomId is gone
    assert replaced["updated_at"] >= replaced["created_at"]

    resp = await r.http.patch(url, json={"enabled": False}, headers=alice.auth())
    bodies.append(await resp.text())
    patched = (await resp.json())["data"]["webhook"]
    assert resp.status == 200 and patched["enabled"] is False
    assert patched["url"] == replacement["url"]  # PATCH keeps what it does not name

    resp = await r.http.delete(url, headers=alice.auth())
    bodies.append(await resp.text())
    assert resp.status == 200 and (await resp.json())["data"]["webhook"]["id"] == webhook["id"]

    resp = await r.http.get(url, headers=alice.auth())
    bodies.append(await resp.text())
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"
    assert all(secret not in text for text in bodies)


async def test_patch_can_rescope_and_unscope_a_webhook(registry):
    r, alice = registry, registry.alice
    _, created = await create(r)
    url = r.webhooks_url(alice, created["data"]["webhook"]["id"])
    resp = await r.http.patch(url, json={"roomId": None, "name": "all rooms"}, headers=alice.auth())
    data = (await resp.json())["data"]["webhook"]
    assert resp.status == 200 and data["room_id"] is None and data["name"] == "all rooms"
    resp = await r.http.patch(url, json={"roomId": "room-9"}, headers=alice.auth())
    assert (await resp.json())["data"]["webhook"]["room_id"] == "room-9"


async def test_patch_refuses_organization_events_on_a_room_scoped_webhook(registry):
    r, alice = registry, registry.alice
    _, created = await create(r)
    url = r.webhooks_url(alice, created["data"]["webhook"]["id"])
    resp = await r.http.patch(url, json={"events": ["member.added"]}, headers=alice.auth())
    body = await resp.json()
    assert resp.status == 400
    assert body["error"]["details"][0]["field"] == "events"
    assert "member.added" in body["error"]["message"]


@pytest.mark.parametrize(
    ("body", "field", "needle"),
    [
        ({**SEED_000_BODY, "events": []}, "events", "at least one event"),
        ({**SEED_000_BODY, "events": ["participant.joined", "no.such"]}, "events", "no.such"),
        ({**SEED_000_BODY, "url": "ftp://files.example.com/x"}, "url", "ftp"),
        ({**SEED_000_BODY, "url": "https://" + "a" * 2050 + ".com"}, "url", "2048"),
        ({**SEED_000_BODY, "url": "http://hooks.example.com/x"}, "url", "https"),
        ({**SEED_000_BODY, "roomId": 42}, "roomId", "string"),
        ({**SEED_000_BODY, "name": ""}, "name", "at least 1"),
        ({"events": ["participant.joined"]}, "url", "field required"),
        ({**SEED_000_BODY, "secret": "mine"}, "secret", "64 lowercase hex"),
    ],
)
async def test_bad_input_is_a_400_naming_the_field(registry, body, field, needle):
    status, answer = await create(registry, body=body)
    assert status == 400
    assert answer["success"] is False and answer["data"] is None
    assert answer["error"]["code"] == "validation_error"
    details = {d["field"]: d["message"] for d in answer["error"]["details"]}
    assert field in details and needle in details[field]
    assert field in answer["error"]["message"]


@pytest.mark.parametrize("raw", [b"", b"{not json", b"[1, 2]", b'"a string"'])
async def test_a_body_that_is_not_a_json_object_is_a_400(registry, raw):
    resp = await registry.http.post(
        registry.webhooks_url(registry.alice),
        data=raw,
        headers={**registry.alice.auth(), "Content-Type": "application/json"},
    )
    assert resp.status == 400
    assert (await resp.json())["error"]["message"].startswith("body")


async def test_member_key_reads_but_cannot_write(registry):
    r, alice = registry, registry.alice
    status, body = await create(r, role=Role.MEMBER)
    assert status == 403 and "OWNER and ADMIN" in body["error"]["message"]
    _, created = await create(r)
    url = r.webhooks_url(alice, created["data"]["webhook"]["id"])
    member = alice.auth(Role.MEMBER)
    assert (await r.http.get(url, headers=member)).status == 200
    assert (await r.http.patch(url, json={"enabled": False}, headers=member)).status == 403
    assert (await r.http.put(url, json=SEED_000_BODY, headers=member)).status == 403
    assert (await r.http.delete(url, headers=member)).status == 403


@pytest.mark.parametrize("role", list(Role))
async def test_no_key_reaches_another_accounts_webhooks(registry, role):
    r, alice, bob = registry, registry.alice, registry.bob
    _, created = await create(r)
    webhook_id = created["data"]["webhook"]["id"]
    alice_url = r.webhooks_url(alice, webhook_id)
    as_bob = bob.auth(role)
    for method in ("get", "put", "patch", "delete"):
        kwargs = {"json": SEED_000_BODY} if method in ("put", "patch") else {}
        resp = await r.http.request(method, alice_url, headers=as_bob, **kwargs)
        assert resp.status == 403, method
    assert (await r.http.get(r.webhooks_url(alice), headers=as_bob)).status == 403
    assert (
        await r.http.post(r.webhooks_url(alice), json=SEED_000_BODY, headers=as_bob)
    ).status == 403
    # Through bob's own account the id does not exist.
    resp = await r.http.get(r.webhooks_url(bob, webhook_id), headers=as_bob)
    assert resp.status == 404
    listed = await (await r.http.get(r.webhooks_url(bob), headers=as_bob)).json()
    assert listed["data"]["webhooks"] == []


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer rhk_not-a-real-key"}, {"Authorization": "Basic YTpi"}],
)
async def test_requests_without_a_valid_key_get_401(registry, headers):
    for method in ("get", "post"):
        resp = await registry.http.request(
            method, registry.webhooks_url(registry.alice), json=SEED_000_BODY, headers=headers
        )
        body = await resp.json()
        assert resp.status == 401 and body["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(
    "webhook_id",
    [str(uuid.uuid4()), "wh_abc123", "'; drop table x;--"],
    ids=["unknown-uuid", "not-a-uuid", "sql"],
)
async def test_unknown_ids_are_404_inside_the_account(registry, webhook_id):
    resp = await registry.http.get(
        registry.webhooks_url(registry.alice, webhook_id), headers=registry.alice.auth()
    )
    assert resp.status == 404


async def test_list_pages_newest_first_with_a_cursor(registry):
    r, alice = registry, registry.alice
    ids = []
    for n in range(5):
        _, created = await create(r, body={**SEED_000_BODY, "name": f"hook {n}"})
        ids.append(created["data"]["webhook"]["id"])
    seen, cursor = [], None
    while True:
        params = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        resp = await r.http.get(r.webhooks_url(alice), params=params, headers=alice.auth())
        data = (await resp.json())["data"]
        assert len(data["webhooks"]) <= 2
        seen += [w["id"] for w in data["webhooks"]]
        cursor = data["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))


@pytest.mark.parametrize(
    ("param", "value"),
    [("limit", "0"), ("limit", "abc"), ("limit", "1000"), ("cursor", "garbage!")],
)
async def test_bad_list_parameters_are_400(registry, param, value):
    resp = await registry.http.get(
        registry.webhooks_url(registry.alice),
        params={param: value},
        headers=registry.alice.auth(),
    )
    body = await resp.json()
    assert resp.status == 400 and body["error"]["message"].startswith(param)


async def test_event_types_lists_the_whole_catalog(registry):
    resp = await registry.http.get(registry.url + "/v1/event-types")
    types = (await resp.json())["data"]["event_types"]
    assert resp.status == 200
    assert [t["name"] for t in types] == list(CATALOG)
    scopes = {t["name"]: t["scope"] for t in types}
    assert scopes["participant.joined"] == "room" and scopes["webhook.created"] == "organization"


async def test_health_readiness_and_metrics(registry):
    assert (await registry.http.get(registry.url + "/healthz")).status == 200
    ready = await registry.http.get(registry.url + "/readyz")
    assert ready.status == 200
    assert (await ready.json())["data"]["checks"] == {"postgres": "ok", "outbox": "ok"}
    await create(registry)
    metrics = await (await registry.http.get(registry.url + "/metrics")).text()
    assert (
        'roomhooks_http_requests_total{method="POST",'
        'route="/v1/accounts/{account_id}/webhooks",status="201"} 1.0'
    ) in metrics


async def test_unknown_routes_and_methods_still_answer_with_the_envelope(registry):
    resp = await registry.http.get(registry.url + "/v1/nothing-here")
    assert resp.status == 404 and (await resp.json())["success"] is False
    resp = await registry.http.post(registry.url + "/v1/event-types")
    assert resp.status == 405 and (await resp.json())["error"]["code"] == "method_not_allowed"


async def test_openapi_document_describes_every_route(registry):
    resp = await registry.http.get(registry.url + "/openapi.json")
    document = await resp.json()
    assert document["openapi"].startswith("3.1")
    documented = {
        (path, method.upper()) for path, item in document["paths"].items() for method in item
    }
    served = {
        (route.resource.canonical, route.method)
        for route in registry.app.router.routes()
        if route.method != "HEAD" and not is_console_route(route)
    }
    assert documented == served
    assert ("/v1/accounts/{account_id}/webhooks/{webhook_id}", "PATCH") in served
    schemas = document["components"]["schemas"]
    assert "secret" in schemas["WebhookWithSecret"]["properties"]
    assert "secret" not in schemas["Webhook"]["properties"]
