"""Custom headers and secret rotation over the registry's real HTTP API, and the headers a
real receiver gets on every attempt through the whole pipeline."""

from __future__ import annotations

import base64
import os

import pytest

from services.registry.policy import Role
from tests.integration import test_pipeline
from tests.integration.test_pipeline import collab_event
from tests.support.polling import eventually
from tests.support.receiver import Script

pytestmark = pytest.mark.integration

platform = test_pipeline.platform  # the whole platform in one process
TOKEN = "Bearer s3cr3t-t0ken"
HEADERS = {"Authorization": TOKEN, "X-Tenant": "acme"}


def hook(**fields) -> dict:
    return {"url": "https://hooks.example.com/in", "events": ["participant.joined"], **fields}


async def call(registry, method: str, url: str, role: Role = Role.OWNER, account=None, **kw):
    account = account or registry.alice
    async with registry.http.request(method, url, headers=account.auth(role), **kw) as answer:
        return answer.status, await answer.json()


async def created(registry, **fields) -> dict:
    status, body = await call(
        registry, "POST", registry.webhooks_url(registry.alice), json=hook(**fields)
    )
    assert status == 201, body
    return body["data"]["webhook"]


@pytest.mark.parametrize(
    ("headers", "field"),
    [
        ({"Host": "evil.example"}, "headers.Host"),
        ({"x-webhook-signature": "0" * 64}, "headers.x-webhook-signature"),
        ({"Webhook-Id": "x"}, "headers.Webhook-Id"),
        ({"X Bad": "v"}, "headers.X Bad"),
        ({"X-Inject": "a\r\nHost: evil"}, "headers.X-Inject"),
        ({"X-Big": "x" * 1025}, "headers.X-Big"),
        ({f"X-H{n}": "v" for n in range(21)}, "headers"),
    ],
    ids=["host", "signature", "webhook-prefix", "not-a-token", "crlf", "over-1-kib", "21"],
)
async def test_every_write_refuses_a_bad_header_naming_it(registry, headers, field):
    existing = await created(registry)
    url = registry.webhooks_url(registry.alice, existing["id"])
    for method, target, body in (
        ("POST", registry.webhooks_url(registry.alice), hook(headers=headers)),
        ("PUT", url, hook(headers=headers)),
        ("PATCH", url, {"headers": headers}),
    ):
        status, answer = await call(registry, method, target, json=body)
        assert status == 400, (method, answer)
        assert [d["field"] for d in answer["error"]["details"]] == [field], (method, answer)


async def test_owner_and_admin_see_header_values_and_member_keys_see_them_masked(registry):
    webhook = await created(registry, headers=HEADERS)
    assert webhook["headers"] == HEADERS
    one, listed = (
        registry.webhooks_url(registry.alice, webhook["id"]),
        registry.webhooks_url(registry.alice),
    )
    masked = {"Authorization": "****", "X-Tenant": "****"}
    for role, expected in ((Role.OWNER, HEADERS), (Role.ADMIN, HEADERS), (Role.MEMBER, masked)):
        status, answer = await call(registry, "GET", one, role)
        assert status == 200 and answer["data"]["webhook"]["headers"] == expected, role
        status, answer = await call(registry, "GET", listed, role)
        assert [w["headers"] for w in answer["data"]["webhooks"]] == [expected], role
        if role is Role.MEMBER:
            status, answer = await call(registry, "GET", one, role)
            assert "s3cr3t" not in str(answer)
    status, _ = await call(registry, "PATCH", one, Role.MEMBER, json={"headers": {}})
    assert status == 403
    bobs = registry.webhooks_url(registry.bob, webhook["id"])
    status, _ = await call(registry, "GET", bobs, account=registry.bob)
    assert status == 404


async def test_a_rotation_answers_the_new_secret_once_only_to_writers_of_the_account(registry):
    webhook = await created(registry)
    url = registry.webhooks_url(registry.alice, webhook["id"]) + "/rotate-secret"
    status, answer = await call(registry, "POST", url)  # no body: the default overlap
    assert status == 200, answer
    rotated = answer["data"]["webhook"]
    assert len(rotated["secret"]) == 64 and rotated["secret"] != webhook["secret"]
    assert rotated["previous_secret_expires_at"] is not None
    for role in Role:
        status, answer = await call(
            registry, "GET", registry.webhooks_url(registry.alice, webhook["id"]), role
        )
        assert status == 200 and "secret" not in answer["data"]["webhook"]
    assert (await call(registry, "POST", url, Role.MEMBER))[0] == 403
    bobs = registry.webhooks_url(registry.bob, webhook["id"]) + "/rotate-secret"
    assert (await call(registry, "POST", bobs, account=registry.bob))[0] == 404
    status, answer = await call(registry, "POST", url, account=registry.bob)
    assert status == 403 and answer["data"] is None
    one = registry.webhooks_url(registry.alice, webhook["id"])
    unchanged = (await call(registry, "GET", one))[1]["data"]["webhook"]
    assert unchanged["updated_at"] == rotated["updated_at"]  # refused rotations changed nothing
    status, answer = await call(registry, "POST", url, json={"overlapSeconds": 0})
    assert status == 200 and answer["data"]["webhook"]["previous_secret_expires_at"] is None


@pytest.mark.parametrize(
    "body", [{"overlapSeconds": -1}, {"overlapSeconds": 604_801}, {"overlapSeconds": "1"}]
)
async def test_a_rotation_refuses_an_overlap_out_of_bounds_naming_it(registry, body):
    webhook = await created(registry)
    url = registry.webhooks_url(registry.alice, webhook["id"]) + "/rotate-secret"
    status, answer = await call(registry, "POST", url, json=body)
    assert status == 400 and [d["field"] for d in answer["error"]["details"]] == ["overlapSeconds"]


async def test_an_imported_secret_is_kept_and_a_bad_one_refused_naming_it(registry):
    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    assert (await created(registry, secret=secret))["secret"] == secret
    for bad in ("whsec_" + "A" * 20, "whsec_not*base64*at*all*here*x", "f" * 63):
        status, answer = await call(
            registry, "POST", registry.webhooks_url(registry.alice), json=hook(secret=bad)
        )
        assert status == 400 and [d["field"] for d in answer["error"]["details"]] == ["secret"], bad
        assert bad not in str(answer)


async def test_a_receiver_gets_the_headers_on_every_attempt_and_their_changes(platform, registry):
    alice = registry.alice
    platform.receiver.script("/headers", Script(statuses=[500, 200]))
    webhook = await platform.webhook(
        alice, "/headers", ["participant.joined"], headers=HEADERS, retrySchedule=[1]
    )

    def received():
        return platform.receiver.received["/headers"]

    async def arrived_after(count: int) -> bool:
        return len(received()) > count

    await platform.publish(collab_event("participant.joined", alice.id))
    await eventually(lambda: arrived_after(1), timeout_s=20)  # the attempt and its retry
    for got in received():
        assert got.headers["Authorization"] == TOKEN and got.headers["X-Tenant"] == "acme"
    await platform.change(alice, webhook, headers={"X-Tenant": "globex"})

    async def sent_with_new_headers() -> bool:
        # Delivery drops its cached target when the registry's record reaches it (a second
        # or two): a request sent before that still carries the old headers.
        count = len(received())
        await platform.publish(collab_event("participant.joined", alice.id))
        await eventually(lambda: arrived_after(count), timeout_s=10)
        return received()[-1].headers["X-Tenant"] == "globex"

    await eventually(sent_with_new_headers, timeout_s=30, interval_s=0.5)
    assert "Authorization" not in received()[-1].headers
