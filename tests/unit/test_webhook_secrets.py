"""Rotating a webhook's secret and importing one: what is stored (sealed), answered (once)
and announced, and what each body is refused with."""

from __future__ import annotations

import base64
import json
import os
import uuid
from datetime import timedelta

import pytest
from pydantic import ValidationError

from services.registry.errors import NotFound
from services.registry.http import validation_error
from services.registry.webhooks.models import (
    SecretRotation,
    WebhookCreateInput,
    WebhookInput,
    WebhookPatch,
)
from services.registry.webhooks.service import WebhookService
from shared.kafka import Topics
from shared.secrets_box import SecretsBox, generate_key
from tests.support.registry_contracts import T0
from tests.support.registry_fakes import FakeWebhooks

ACCOUNT = str(uuid.uuid4())
BOX = SecretsBox([generate_key()])
BODY = {"url": "https://hooks.example.com/in", "events": ["participant.joined"]}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self):
        return self.now


@pytest.fixture
def store() -> FakeWebhooks:
    return FakeWebhooks()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def webhooks(store, clock) -> WebhookService:
    return WebhookService(store, Topics(), clock, BOX)


def field_of(refused: ValidationError) -> list[str]:
    return [d["field"] for d in validation_error(refused).details]


async def test_a_rotation_answers_the_new_secret_once_and_keeps_the_old_one_for_the_overlap(
    webhooks, store
):
    created = await webhooks.create(ACCOUNT, WebhookInput.model_validate(BODY))
    rotated = await webhooks.rotate_secret(ACCOUNT, created.id, overlap_s=86_400)
    assert rotated.secret != created.secret and len(rotated.secret) == 64
    row = store.rows[uuid.UUID(created.id)]
    assert BOX.open(row.secret_ciphertext) == rotated.secret
    assert BOX.open(row.previous_secret_ciphertext) == created.secret
    assert row.previous_secret_until == T0 + timedelta(days=1) and row.revision == 2
    assert rotated.previous_secret_expires_at == T0 + timedelta(days=1)
    shown = (await webhooks.get(ACCOUNT, created.id, reveal=True)).model_dump(mode="json")
    assert (
        "secret" not in shown and shown["previous_secret_expires_at"] == "2026-05-02T12:00:00.000Z"
    )
    _topic, _key, record = store.outbox[-1]  # delivery drops its cached target on this
    assert json.loads(record)["revision"] == 2
    assert rotated.secret.encode() not in record and created.secret.encode() not in record


async def test_a_rotation_without_overlap_keeps_no_previous_secret(webhooks, store):
    created = await webhooks.create(ACCOUNT, WebhookInput.model_validate(BODY))
    rotated = await webhooks.rotate_secret(ACCOUNT, created.id, overlap_s=0)
    row = store.rows[uuid.UUID(created.id)]
    assert row.previous_secret_ciphertext is None and row.previous_secret_until is None
    assert BOX.open(row.secret_ciphertext) == rotated.secret


async def test_a_rotation_during_an_overlap_ends_it_at_most_two_secrets_sign(
    webhooks, store, clock
):
    created = await webhooks.create(ACCOUNT, WebhookInput.model_validate(BODY))
    second = await webhooks.rotate_secret(ACCOUNT, created.id, overlap_s=3_600)
    clock.now = T0 + timedelta(minutes=10)
    third = await webhooks.rotate_secret(ACCOUNT, created.id, overlap_s=60)
    row = store.rows[uuid.UUID(created.id)]
    assert BOX.open(row.secret_ciphertext) == third.secret
    assert BOX.open(row.previous_secret_ciphertext) == second.secret
    assert row.previous_secret_until == clock.now + timedelta(seconds=60)


async def test_a_rotation_keeps_the_headers_and_answers_them(webhooks):
    body = WebhookInput.model_validate({**BODY, "headers": {"Authorization": "Bearer t"}})
    created = await webhooks.create(ACCOUNT, body)
    rotated = await webhooks.rotate_secret(ACCOUNT, created.id, overlap_s=0)
    assert rotated.headers == {"Authorization": "Bearer t"}


async def test_only_the_accounts_own_webhook_is_rotated(webhooks, store):
    created = await webhooks.create(ACCOUNT, WebhookInput.model_validate(BODY))
    for account, webhook_id in ((str(uuid.uuid4()), created.id), (ACCOUNT, str(uuid.uuid4()))):
        with pytest.raises(NotFound):
            await webhooks.rotate_secret(account, webhook_id, overlap_s=0)
    assert store.rows[uuid.UUID(created.id)].revision == 1


@pytest.mark.parametrize("overlap", [0, 1, 604_800])
def test_an_overlap_from_0_to_7_days_is_accepted(overlap):
    assert SecretRotation.model_validate({"overlapSeconds": overlap}).overlap_seconds == overlap


def test_the_overlap_defaults_to_a_day():
    assert SecretRotation.model_validate({}).overlap_seconds == 86_400


@pytest.mark.parametrize(
    "body",
    [
        {"overlapSeconds": -1},
        {"overlapSeconds": 604_801},
        {"overlapSeconds": "60"},
        {"overlapSeconds": 1.5},
        {"overlapSeconds": True},
        {"overlapSeconds": None},
        {"overlapSeconds": 10**30},
    ],
    ids=["negative", "over-7-days", "string", "fraction", "bool", "null", "huge"],
)
def test_an_overlap_out_of_bounds_or_not_an_integer_is_refused_naming_it(body):
    with pytest.raises(ValidationError) as refused:
        SecretRotation.model_validate(body)
    assert field_of(refused.value) == ["overlapSeconds"]


def test_a_rotation_body_refuses_unknown_fields():
    with pytest.raises(ValidationError) as refused:
        SecretRotation.model_validate({"overlap": 10})
    assert field_of(refused.value) == ["overlap"]


# --- a secret given on create ---------------------------------------------------------------


@pytest.mark.parametrize(
    "secret",
    ["0123456789abcdef" * 4, "whsec_" + base64.b64encode(os.urandom(32)).decode()],
    ids=["ours", "standard-webhooks"],
)
async def test_a_secret_given_on_create_is_kept_sealed_and_answered(webhooks, store, secret):
    body = WebhookCreateInput.model_validate({**BODY, "secret": secret})
    created = await webhooks.create(ACCOUNT, body, secret=body.secret)
    assert created.secret == secret
    [row] = store.rows.values()
    assert BOX.open(row.secret_ciphertext) == secret and secret not in row.secret_ciphertext


@pytest.mark.parametrize(
    "secret",
    ["short", "whsec_!!!!", "whsec_" + base64.b64encode(os.urandom(16)).decode(), 42],
    ids=["neither-form", "bad-base64", "too-short", "not-a-string"],
)
def test_a_bad_secret_on_create_is_refused_naming_it_and_never_echoed(secret):
    with pytest.raises(ValidationError) as refused:
        WebhookCreateInput.model_validate({**BODY, "secret": secret})
    error = validation_error(refused.value)
    assert [d["field"] for d in error.details] == ["secret"]
    if isinstance(secret, str):
        assert secret not in error.message


@pytest.mark.parametrize(
    ("model", "body"), [(WebhookInput, BODY), (WebhookPatch, {})], ids=["put", "patch"]
)
def test_put_and_patch_take_no_secret(model, body):
    with pytest.raises(ValidationError) as refused:
        model.model_validate({**body, "secret": "0" * 64})
    error = validation_error(refused.value)
    assert [(d["field"], d["message"]) for d in error.details] == [("secret", "unknown field")]
