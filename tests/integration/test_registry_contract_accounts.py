"""AccountRepository's contract, on the fake and on Postgres alike."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from services.registry.accounts.models import ApiKeyRow
from services.registry.errors import NotFound
from tests.support.registry_contracts import T0, subject_fixture

pytestmark = pytest.mark.integration

subject = subject_fixture("accounts")


def key_row(account_id: uuid.UUID, *, minute: int = 0, **fields) -> ApiKeyRow:
    values = {
        "id": uuid.uuid4(),
        "account_id": account_id,
        "role": "ADMIN",
        "token_sha256": uuid.uuid4().hex * 2,
        "token_prefix": "rhk_abcd",
        "created_at": T0 + timedelta(minutes=minute),
    }
    return ApiKeyRow(**(values | fields))


async def new_account(subject) -> uuid.UUID:
    account_id = uuid.uuid4()
    await subject.repo.insert_account(account_id, "acme")
    return account_id


async def insert(subject, row: ApiKeyRow):
    async with subject.repo.keys_of(row.account_id) as keys:
        return await keys.insert(row)


async def test_an_account_exists_once_inserted(subject):
    account_id = uuid.uuid4()
    assert await subject.repo.account_exists(account_id) is False
    await subject.repo.insert_account(account_id, "acme")
    assert await subject.repo.account_exists(account_id) is True


async def test_a_key_is_stored_as_minted_and_read_back_without_its_digest(subject):
    account_id = await new_account(subject)
    row = key_row(account_id, label="ci", expires_at=T0 + timedelta(days=1))
    key = await insert(subject, row)
    assert (key.id, key.account_id, key.role, key.label) == (row.id, account_id, "ADMIN", "ci")
    assert (key.created_at, key.expires_at) == (row.created_at, row.expires_at)
    assert (key.last_used_at, key.revoked_at, key.token_prefix) == (None, None, "rhk_abcd")
    assert row.token_sha256 not in repr(key)


async def test_a_key_is_found_by_its_digest_only_while_live(subject):
    account_id = await new_account(subject)
    row = key_row(account_id, expires_at=T0 + timedelta(hours=1))
    key = await insert(subject, row)
    assert await subject.repo.find_key(row.token_sha256, now=T0) == key
    assert await subject.repo.find_key("cd" * 32, now=T0) is None
    assert await subject.repo.find_key("rhk_abcd", now=T0) is None
    assert await subject.repo.find_key(row.token_sha256, now=T0 + timedelta(hours=1)) is None
    async with subject.repo.keys_of(account_id) as keys:
        await keys.revoke(key.id, T0)
    assert await subject.repo.find_key(row.token_sha256, now=T0) is None


async def test_keys_of_an_account_that_does_not_exist_are_not_found(subject):
    with pytest.raises(NotFound):
        async with subject.repo.keys_of(uuid.uuid4()):
            pass


async def test_a_transaction_reaches_only_its_accounts_keys(subject):
    mine, theirs = await new_account(subject), await new_account(subject)
    their_key = await insert(subject, key_row(theirs))
    async with subject.repo.keys_of(mine) as keys:
        assert await keys.get(their_key.id) is None
        assert await keys.live_keys(T0) == []
    async with subject.repo.keys_of(theirs) as keys:
        assert await keys.get(their_key.id) == their_key


async def test_live_keys_leave_out_revoked_and_expired_ones(subject):
    account_id = await new_account(subject)
    forever = await insert(subject, key_row(account_id))
    later = await insert(subject, key_row(account_id, expires_at=T0 + timedelta(minutes=5)))
    revoked = await insert(subject, key_row(account_id))
    async with subject.repo.keys_of(account_id) as keys:
        stored = await keys.revoke(revoked.id, T0)
        assert stored.revoked_at == T0
        assert {k.id for k in await keys.live_keys(T0)} == {forever.id, later.id}
        assert {k.id for k in await keys.live_keys(T0 + timedelta(minutes=5))} == {forever.id}


async def test_a_transaction_that_raises_keeps_nothing(subject):
    account_id = await new_account(subject)
    kept_row, lost = key_row(account_id), key_row(account_id)
    kept = await insert(subject, kept_row)
    with pytest.raises(RuntimeError):
        async with subject.repo.keys_of(account_id) as keys:
            await keys.insert(lost)
            await keys.revoke(kept.id, T0)
            raise RuntimeError("changed my mind")
    assert await subject.repo.find_key(lost.token_sha256, now=T0) is None
    assert await subject.repo.find_key(kept_row.token_sha256, now=T0) == kept  # not revoked
    page = await subject.repo.page_keys(account_id, limit=10, after=None)
    assert page == [kept]


async def test_keys_page_newest_first_within_their_account(subject):
    account_id, other = await new_account(subject), await new_account(subject)
    made = [await insert(subject, key_row(account_id, minute=m)) for m in range(3)]
    await insert(subject, key_row(other, minute=9))
    first = await subject.repo.page_keys(account_id, limit=2, after=None)
    assert first == made[:0:-1]
    rest = await subject.repo.page_keys(
        account_id, limit=2, after=(first[-1].created_at, first[-1].id)
    )
    assert rest == [made[0]]


async def test_recorded_use_never_moves_back_and_ignores_unknown_keys(subject):
    account_id = await new_account(subject)
    used, unused = (
        await insert(subject, key_row(account_id)),
        await insert(subject, key_row(account_id, minute=1)),
    )
    minute = T0 + timedelta(minutes=3)
    await subject.repo.record_use({used.id: minute, uuid.uuid4(): minute})
    await subject.repo.record_use({used.id: T0})
    by_id = {k.id: k for k in await subject.repo.page_keys(account_id, limit=10, after=None)}
    assert by_id[used.id].last_used_at == minute
    assert by_id[unused.id].last_used_at is None
