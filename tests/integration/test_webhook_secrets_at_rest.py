"""A rotation's previous secret and the custom headers are sealed at rest like the secret,
and the registry's start-up re-seals them too when the operator's key rotates."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from services.registry.sealing import seal_stored_secrets
from shared.secrets_box import SecretsBox, generate_key, key_id, open_headers, seal_headers

pytestmark = pytest.mark.integration

HEADERS = {"Authorization": "Bearer s3cr3t"}


async def insert(pool, box: SecretsBox, *, headers_box: SecretsBox | None = None) -> uuid.UUID:
    account, webhook_id = uuid.uuid4(), uuid.uuid4()
    await pool.execute("INSERT INTO registry.accounts (id, name) VALUES ($1, 'r')", account)
    await pool.execute(
        "INSERT INTO registry.webhooks (id, organization_id, url, secret_ciphertext,"
        " previous_secret_ciphertext, previous_secret_until, headers_ciphertext, events,"
        " created_at, updated_at) VALUES ($1, $2, 'https://x.example/h', $3, $4, $5, $6,"
        " '{participant.joined}', now(), now())",
        webhook_id,
        account,
        box.seal("new"),
        box.seal("old"),
        datetime(2030, 1, 1, tzinfo=UTC),
        seal_headers(headers_box or box, HEADERS),
    )
    return webhook_id


async def test_start_up_reseals_the_previous_secret_and_the_headers_under_the_newest_key(pool):
    old, new, lost = generate_key(), generate_key(), generate_key()
    kept = await insert(pool, SecretsBox([old]))
    stranded = await insert(pool, SecretsBox([new]), headers_box=SecretsBox([lost]))

    report = await seal_stored_secrets(pool, SecretsBox([new, old]))

    assert (report.resealed, report.unreadable) == (1, 1)
    row = await pool.fetchrow("SELECT * FROM registry.webhooks WHERE id = $1", kept)
    only_new = SecretsBox([new])
    assert only_new.open(row["secret_ciphertext"]) == "new"
    assert only_new.open(row["previous_secret_ciphertext"]) == "old"
    assert open_headers(only_new, row["headers_ciphertext"]) == HEADERS
    lost_row = await pool.fetchrow("SELECT * FROM registry.webhooks WHERE id = $1", stranded)
    assert lost_row["headers_ciphertext"].startswith(key_id(lost) + ":")  # left as it was


async def test_no_column_holds_a_header_value_or_a_secret_in_the_clear(pool, registry):
    alice = registry.alice
    body = {"url": "https://x.example/h", "events": ["participant.joined"], "headers": HEADERS}
    answer = await registry.http.post(registry.webhooks_url(alice), json=body, headers=alice.auth())
    webhook = (await answer.json())["data"]["webhook"]
    url = registry.webhooks_url(alice, webhook["id"]) + "/rotate-secret"
    rotated = (await (await registry.http.post(url, headers=alice.auth())).json())["data"]
    row = await pool.fetchrow(
        "SELECT * FROM registry.webhooks WHERE id = $1", uuid.UUID(webhook["id"])
    )
    stored = " ".join(str(value) for value in row.values())
    for plain in ("s3cr3t", "Authorization", webhook["secret"], rotated["webhook"]["secret"]):
        assert plain not in stored
    assert row["previous_secret_ciphertext"] and row["headers_ciphertext"]
