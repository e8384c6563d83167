"""WebhookRepository's contract, on the fake and on Postgres alike."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from services.registry.errors import QuotaExceeded
from services.registry.webhooks.records import listed_document, public_webhook
from tests.support.registry_contracts import T0, subject_fixture, webhook_row

pytestmark = pytest.mark.integration

subject = subject_fixture("webhooks")
ENTRY = ("roomhooks.registry", b"webhook:1", b"{}")


async def test_a_webhook_is_found_in_its_own_account_only(subject):
    mine, theirs = await subject.account(), await subject.account()
    row = webhook_row(mine)
    async with subject.repo.transaction() as tx:
        assert await tx.insert(row) == row
    assert await subject.repo.get(mine, row.id) == row
    assert await subject.repo.get(theirs, row.id) is None
    assert await subject.repo.get(mine, uuid.uuid4()) is None


async def test_pages_are_newest_first_and_go_on_after_the_cursor(subject):
    mine, theirs = await subject.account(), await subject.account()
    rows = [webhook_row(mine, minute=m) for m in range(5)]
    async with subject.repo.transaction() as tx:
        for row in [*rows, webhook_row(theirs, minute=9)]:
            await tx.insert(row)
    first = await subject.repo.listing(mine, limit=2, after=None)
    assert [w.id for w in first] == [rows[4].id, rows[3].id]
    rest = await subject.repo.listing(mine, limit=10, after=(first[-1].created_at, first[-1].id))
    assert [w.id for w in rest] == [rows[2].id, rows[1].id, rows[0].id]
    only = await subject.repo.listing(mine, limit=10, after=None, only={rows[1].id, uuid.uuid4()})
    assert [w.id for w in only] == [rows[1].id]


# What a customer may have put in a webhook's texts: quotes, escapes, every control character
# Postgres stores, line and paragraph separators, markup, characters beyond the BMP.
HOSTILE = [
    'say "hi" \\ back\\slash /',
    "".join(map(chr, range(1, 32))) + "\x7f",
    "caf\u00e9 \u2028 \u2029 \U0001f600 </script><b>x</b>",
    "",
]


@pytest.mark.parametrize("text", HOSTILE)
async def test_a_listed_webhook_says_byte_for_byte_what_the_model_would(subject, text):
    mine = await subject.account()
    moment = datetime(2026, 3, 4, 5, 6, 7, 999_999, tzinfo=timezone(timedelta(hours=-3)))
    plain = webhook_row(mine, minute=1)
    full = webhook_row(
        mine,
        minute=2,
        name=text,
        url="https://hooks.example.com/" + text,
        events=[text, "participant.joined"],
        room_id=text,
        enabled=False,
        disabled_reason=text,
        retry_schedule=[1, 86_400],
        previous_secret_ciphertext="k1:old",
        previous_secret_until=moment,
        headers_ciphertext="k1:headers",
        ordering="room",
        send_traceparent=True,
        updated_at=moment,
    )
    async with subject.repo.transaction() as tx:
        await tx.insert(plain)
        await tx.insert(full)
    listed = await subject.repo.listing(mine, limit=10, after=None)
    stored = [await subject.repo.get(mine, row.id) for row in (full, plain)]
    assert [(w.id, w.created_at, w.headers_ciphertext) for w in listed] == [
        (row.id, row.created_at, row.headers_ciphertext) for row in stored
    ]
    documents = [listed_document(w, {}) for w in listed]
    assert documents == [public_webhook(row).model_dump_json() for row in stored]


async def test_an_update_keeps_ids_secret_and_creation_and_bumps_the_revision(subject):
    mine = await subject.account()
    row = webhook_row(mine)
    async with subject.repo.transaction() as tx:
        await tx.insert(row)
    changed = replace(
        row,
        name="renamed",
        url="https://other.example.com/in",
        events=["participant.left"],
        room_id="room-1",
        enabled=False,
        disabled_reason="gone",
        retry_schedule=[1, 2],
        updated_at=T0.replace(hour=13),
        secret_ciphertext="k1:other",
        created_at=T0.replace(hour=14),
        revision=99,
    )
    async with subject.repo.transaction() as tx:
        assert await tx.get_for_update(mine, row.id) == row
        stored = await tx.update(changed)
    expected = replace(changed, secret_ciphertext="k1:sealed", created_at=T0, revision=2)
    assert stored == expected
    assert await subject.repo.get(mine, row.id) == expected


async def test_a_delete_answers_the_last_state_once_and_only_in_the_account(subject):
    mine, theirs = await subject.account(), await subject.account()
    row = webhook_row(mine)
    async with subject.repo.transaction() as tx:
        await tx.insert(row)
    async with subject.repo.transaction() as tx:
        assert await tx.delete(theirs, row.id) is None
        assert await tx.delete(mine, row.id) == row
        assert await tx.delete(mine, row.id) is None
    assert await subject.repo.get(mine, row.id) is None


async def test_the_quota_counts_the_accounts_own_webhooks(subject):
    mine, theirs = await subject.account(), await subject.account()
    async with subject.repo.transaction() as tx:
        for _ in range(2):
            await tx.insert(webhook_row(mine))
        await tx.check_quota(mine, 3)
        await tx.check_quota(theirs, 1)
        with pytest.raises(QuotaExceeded) as refused:
            await tx.check_quota(mine, 2)
    assert (refused.value.what, refused.value.quota) == ("webhooks", 2)


async def test_entries_are_kept_in_order_with_the_change(subject):
    mine = await subject.account()
    entries = [ENTRY, ("roomhooks.registry", b"webhook:2", None)]
    async with subject.repo.transaction() as tx:
        await tx.insert(webhook_row(mine))
        await tx.enqueue(entries)
    assert await subject.outbox() == entries


async def test_a_transaction_that_raises_keeps_neither_change_nor_entries(subject):
    mine = await subject.account()
    row = webhook_row(mine)
    with pytest.raises(RuntimeError):
        async with subject.repo.transaction() as tx:
            await tx.insert(row)
            await tx.enqueue([ENTRY])
            raise RuntimeError("rolled back")
    assert await subject.repo.get(mine, row.id) is None
    assert await subject.outbox() == []


async def test_all_is_every_accounts_webhooks_by_id(subject):
    rows = [webhook_row(await subject.account()) for _ in range(3)]
    async with subject.repo.transaction() as tx:
        for row in rows:
            await tx.insert(row)
        assert await tx.all() == sorted(rows, key=lambda r: r.id)


async def test_an_update_stores_the_headers_and_keeps_a_rotations_previous_secret(subject):
    mine = await subject.account()
    row = webhook_row(
        mine,
        previous_secret_ciphertext="k1:old",
        previous_secret_until=T0.replace(hour=13),
        headers_ciphertext="k1:headers",
    )
    async with subject.repo.transaction() as tx:
        assert await tx.insert(row) == row
    changed = replace(
        row,
        headers_ciphertext="k1:other-headers",
        previous_secret_ciphertext=None,
        previous_secret_until=None,
    )
    async with subject.repo.transaction() as tx:
        stored = await tx.update(changed)
    expected = replace(row, headers_ciphertext="k1:other-headers", revision=2)
    assert stored == expected and await subject.repo.get(mine, row.id) == expected


async def test_a_secret_replaced_keeps_every_other_field_and_bumps_the_revision(subject):
    mine = await subject.account()
    row = webhook_row(mine, headers_ciphertext="k1:headers")
    async with subject.repo.transaction() as tx:
        await tx.insert(row)
    rotated = replace(
        row,
        secret_ciphertext="k1:new",
        previous_secret_ciphertext="k1:sealed",
        previous_secret_until=T0.replace(hour=14),
        updated_at=T0.replace(hour=13),
        name="ignored",
        headers_ciphertext=None,
        revision=99,
    )
    async with subject.repo.transaction() as tx:
        assert await tx.get_for_update(mine, row.id) == row
        stored = await tx.replace_secret(rotated)
    expected = replace(rotated, name=row.name, headers_ciphertext="k1:headers", revision=2)
    assert stored == expected and await subject.repo.get(mine, row.id) == expected
