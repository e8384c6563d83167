"""Delivery opens a webhook's sealed values once per load: the secret, a rotation's previous
secret with its end, the custom headers. Anything that does not open makes a target without
a secret (its attempts fail with the reason), never one that sends unsigned or bare."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.delivery.rows import StoredTarget
from services.delivery.targets import open_target
from shared.secrets_box import SecretsBox, generate_key, key_id, seal_headers
from shared.signing import PreviousSecret

KEY, LOST = generate_key(), generate_key()
BOX = SecretsBox([KEY])
UNTIL = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)


def stored(box: SecretsBox = BOX, **fields) -> StoredTarget:
    values = {
        "previous_secret_ciphertext": box.seal("old"),
        "previous_secret_until": UNTIL,
        "headers_ciphertext": seal_headers(box, {"Authorization": "Bearer t"}),
    }
    return StoredTarget(
        "https://x.example/h", BOX.seal("new"), None, True, None, **(values | fields)
    )


def test_the_previous_secret_and_the_headers_are_opened_with_the_secret():
    target = open_target(stored(), BOX)
    assert target.secret == "new" and target.secret_error is None
    assert target.previous_secret == PreviousSecret("old", until=int(UNTIL.timestamp()))
    assert target.headers == (("Authorization", "Bearer t"),)


def test_a_webhook_without_rotation_or_headers_has_neither():
    target = open_target(
        stored(
            previous_secret_ciphertext=None, previous_secret_until=None, headers_ciphertext=None
        ),
        BOX,
    )
    assert target.secret == "new" and target.previous_secret is None and target.headers == ()


@pytest.mark.parametrize("column", ["previous_secret_ciphertext", "headers_ciphertext"])
def test_a_value_sealed_under_a_key_we_lack_leaves_the_target_without_a_secret(column):
    lost = SecretsBox([LOST])
    value = lost.seal("old") if column.startswith("previous") else seal_headers(lost, {"A": "b"})
    target = open_target(stored(**{column: value}), BOX)
    assert target.secret is None and f"key {key_id(LOST)}" in (target.secret_error or "")
    assert target.headers == () and target.previous_secret is None
