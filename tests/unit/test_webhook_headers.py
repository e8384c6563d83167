"""A webhook's custom headers: each rule's refusal names `headers.<name>`, the values are
stored sealed and never published, and MEMBER keys see them masked."""

from __future__ import annotations

import json
import uuid

import pytest
from pydantic import ValidationError

from services.registry.http import validation_error
from services.registry.webhooks.models import WebhookInput, WebhookPatch
from services.registry.webhooks.service import WebhookService
from shared.kafka import Topics
from shared.secrets_box import SecretsBox, generate_key, open_headers
from tests.support.registry_contracts import T0
from tests.support.registry_fakes import FakeWebhooks

ACCOUNT = str(uuid.uuid4())
BOX_KEYS = [generate_key()]
BOX = SecretsBox(BOX_KEYS)
TOKEN = "Bearer s3cr3t-t0ken"


def webhook(**fields) -> dict:
    return {"url": "https://hooks.example.com/in", "events": ["participant.joined"], **fields}


def refusals(body: dict, model=WebhookInput) -> dict[str, str]:
    with pytest.raises(ValidationError) as refused:
        model.model_validate(body)
    error = validation_error(refused.value)
    assert error.status == 400
    return {d["field"]: d["message"] for d in error.details}


@pytest.mark.parametrize(
    "name",
    [
        "Host", "content-length", "CONTENT-TYPE", "Transfer-Encoding", "Connection",
        "User-Agent", "Accept-Encoding", "Upgrade", "X-Webhook-Signature",
        "x-webhook-signature-next", "webhook-signature", "Webhook-Id", "webhook-timestamp",
        "X-Webhook-Event", "X-Webhook-Anything",
    ],
)  # fmt: skip
def test_a_name_roomhooks_sets_is_refused_in_any_case(name):
    found = refusals(webhook(headers={"X-Fine": "1", name: "x"}))
    assert list(found) == [f"headers.{name}"] and "cannot be overridden" in found[f"headers.{name}"]


@pytest.mark.parametrize("name", ["X Token", "X-Tök", "X:Y", "", "(x)", "a/b", "X-\u0000"])
def test_a_name_that_is_not_an_rfc_9110_token_is_refused(name):
    assert "not a valid header name" in refusals(webhook(headers={name: "v"}))[f"headers.{name}"]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("a\rb", "CR, LF or NUL"),
        ("a\nb", "CR, LF or NUL"),
        ("a\r\nX-Injected: 1", "CR, LF or NUL"),
        ("a\u0000b", "CR, LF or NUL"),
        ("a\u0007b", "control characters"),
        ("a\u007fb", "control characters"),
        ("x" * 1025, "at most 1024 bytes"),
        ("é" * 513, "at most 1024 bytes"),
    ],
    ids=["cr", "lf", "crlf-injection", "nul", "bell", "del", "1025-bytes", "1026-utf8-bytes"],
)
def test_a_value_with_a_line_break_a_control_character_or_over_1_kib_is_refused(value, reason):
    found = refusals(webhook(headers={"X-Token": value}))
    assert list(found) == ["headers.X-Token"] and reason in found["headers.X-Token"]
    assert value not in json.dumps(found)  # the value may be a credential: never echoed


def test_more_than_20_headers_are_refused_and_20_are_not():
    twenty = {f"X-H{n}": "v" for n in range(20)}
    assert WebhookInput.model_validate(webhook(headers=twenty)).headers == twenty
    found = refusals(webhook(headers={**twenty, "X-H20": "v"}))
    assert found == {"headers": "at most 20 headers"}


def test_a_name_given_twice_in_different_cases_is_refused():
    found = refusals(webhook(headers={"X-Token": "a", "x-token": "b"}))
    assert list(found) == ["headers.x-token"]


def test_a_value_that_is_not_a_string_is_refused_naming_the_header():
    assert list(refusals(webhook(headers={"X-Count": 3}))) == ["headers.X-Count"]


def test_a_very_long_name_is_refused_and_shortened_in_the_answer():
    name = "X" * 5000
    [field] = refusals(webhook(headers={name: "v"}))
    assert field.startswith("headers.XXX") and len(field) < 100


def test_every_refusal_is_named_at_once():
    found = refusals(webhook(headers={"Host": "h", "X-Ok": "ok", "X-Bad": "a\nb"}))
    assert set(found) == {"headers.Host", "headers.X-Bad"}


def test_values_may_hold_tabs_non_ascii_and_exactly_1_kib():
    headers = {"X-Tab": "a\tb", "X-Name": "Zoé 日本", "X-Full": "x" * 1024, "X-Empty": ""}
    assert WebhookInput.model_validate(webhook(headers=headers)).headers == headers


def test_a_patch_refuses_null_headers_and_the_same_rules():
    assert "must be an object" in refusals({"headers": None}, WebhookPatch)["headers"]
    assert list(refusals({"headers": {"Host": "h"}}, WebhookPatch)) == ["headers.Host"]
    assert WebhookPatch.model_validate({"headers": {}}).headers == {}


# --- stored sealed, shown by role, never published ----------------------------------------


@pytest.fixture
def store() -> FakeWebhooks:
    return FakeWebhooks()


@pytest.fixture
def webhooks(store) -> WebhookService:
    return WebhookService(store, Topics(), lambda: T0, BOX)


async def test_headers_are_stored_sealed_and_never_published(webhooks, store):
    created = await webhooks.create(
        ACCOUNT, WebhookInput.model_validate(webhook(headers={"Authorization": TOKEN}))
    )
    assert created.headers == {"Authorization": TOKEN}  # the creator (OWNER or ADMIN) sees it
    [row] = store.rows.values()
    assert TOKEN not in row.headers_ciphertext
    assert open_headers(BOX, row.headers_ciphertext) == {"Authorization": TOKEN}
    for _topic, _key, value in store.outbox:
        assert b"s3cr3t" not in value and b"headers" not in value


async def test_owner_and_admin_see_the_values_and_member_keys_see_them_masked(webhooks):
    headers = {"Authorization": TOKEN, "X-Tenant": "acme"}
    created = await webhooks.create(ACCOUNT, WebhookInput.model_validate(webhook(headers=headers)))
    assert (await webhooks.get(ACCOUNT, created.id, reveal=True)).headers == headers
    masked = {"Authorization": "****", "X-Tenant": "****"}
    assert (await webhooks.get(ACCOUNT, created.id)).headers == masked
    listed = await webhooks.list(ACCOUNT, limit=10, cursor=None)
    assert [json.loads(w)["headers"] for w in listed.webhooks] == [masked]
    revealed = await webhooks.list(ACCOUNT, limit=10, cursor=None, reveal=True)
    assert [json.loads(w)["headers"] for w in revealed.webhooks] == [headers]


def shown_headers(page) -> list[dict]:
    """Each listed webhook's headers, fewest first (both webhooks are made at one instant)."""
    return sorted((json.loads(w)["headers"] for w in page.webhooks), key=len)


class CountingBox(SecretsBox):
    def __init__(self) -> None:
        super().__init__(BOX_KEYS)
        self.opened = 0

    def open(self, sealed: str) -> str:
        self.opened += 1
        return super().open(sealed)


async def test_pages_open_each_sealed_header_map_once_and_show_a_changed_one(store):
    box = CountingBox()
    webhooks = WebhookService(store, Topics(), lambda: T0, box)
    created = await webhooks.create(
        ACCOUNT, WebhookInput.model_validate(webhook(headers={"X-A": "1"}))
    )
    await webhooks.create(ACCOUNT, WebhookInput.model_validate(webhook()))
    for _ in range(3):
        page = await webhooks.list(ACCOUNT, limit=10, cursor=None, reveal=True)
        assert shown_headers(page) == [{}, {"X-A": "1"}]
    assert box.opened == 1  # when the creation showed it
    await webhooks.patch(ACCOUNT, created.id, WebhookPatch(headers={"X-A": "2"}))
    page = await webhooks.list(ACCOUNT, limit=10, cursor=None)
    assert shown_headers(page) == [{}, {"X-A": "****"}]
    page = await webhooks.list(ACCOUNT, limit=10, cursor=None, reveal=True)
    assert shown_headers(page) == [{}, {"X-A": "2"}]
    assert box.opened == 2


async def test_patch_replaces_the_whole_map_and_put_without_headers_clears_them(webhooks, store):
    created = await webhooks.create(
        ACCOUNT, WebhookInput.model_validate(webhook(headers={"X-A": "1", "X-B": "2"}))
    )
    patched = await webhooks.patch(
        ACCOUNT, created.id, WebhookPatch.model_validate({"headers": {"X-C": "3"}})
    )
    assert patched.headers == {"X-C": "3"}
    renamed = await webhooks.patch(ACCOUNT, created.id, WebhookPatch.model_validate({"name": "n"}))
    assert renamed.headers == {"X-C": "3"}
    replaced = await webhooks.replace(ACCOUNT, created.id, WebhookInput.model_validate(webhook()))
    assert replaced.headers == {} and store.rows[uuid.UUID(created.id)].headers_ciphertext is None
