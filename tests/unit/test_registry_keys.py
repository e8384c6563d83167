"""API keys' lifecycle in AccountService, on the in-memory repository: minted once, listed
without secrets, expired and revoked keys refused, the last OWNER key kept, use noted to the
minute and written at most once a minute."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.registry.accounts.models import ApiKey
from services.registry.accounts.service import (
    AccountService,
    LastOwnerKey,
    leaves_no_owner,
)
from services.registry.accounts.usage import KeyUsage
from services.registry.errors import InvalidChange, NotFound, QuotaExceeded
from services.registry.keys import hash_token
from services.registry.policy import Role
from tests.support.registry_fakes import FakeAccounts

T0 = datetime(2026, 5, 1, 12, 0, 30, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store() -> FakeAccounts:
    return FakeAccounts()


@pytest.fixture
def accounts(store: FakeAccounts, clock: Clock) -> AccountService:
    return AccountService(store, clock=clock)


async def test_a_minted_key_is_answered_once_and_its_list_entry_holds_no_secret(accounts, store):
    account_id = await accounts.create_account("acme")
    minted = await accounts.mint_key(account_id, Role.ADMIN, label="ci deploys")
    page = await accounts.list_keys(account_id, limit=10, cursor=None)

    assert page.keys == [minted.key]
    key = minted.key
    assert (key.role, key.label, key.prefix) == ("ADMIN", "ci deploys", minted.token[:8])
    assert minted.token not in repr(key) and hash_token(minted.token) not in repr(key)
    assert (await accounts.identify(hash_token(minted.token))) == key


async def test_an_expiry_must_be_in_the_future(accounts, clock):
    account_id = await accounts.create_account("acme")
    with pytest.raises(InvalidChange) as refused:
        await accounts.mint_key(account_id, Role.MEMBER, expires_at=clock.now)
    assert refused.value.field == "expiresAt"


async def test_a_key_stops_authenticating_when_it_expires(accounts, clock):
    account_id = await accounts.create_account("acme")
    minted = await accounts.mint_key(
        account_id, Role.MEMBER, expires_at=clock.now + timedelta(minutes=5)
    )
    digest = hash_token(minted.token)
    clock.now += timedelta(minutes=5) - timedelta(microseconds=1)
    assert await accounts.identify(digest) is not None
    clock.now += timedelta(microseconds=1)
    assert await accounts.identify(digest) is None


async def test_a_revoked_key_stops_authenticating_and_revoking_again_changes_nothing(
    accounts, clock
):
    account_id = await accounts.create_account("acme")
    await accounts.mint_key(account_id, Role.OWNER)
    member = await accounts.mint_key(account_id, Role.MEMBER)

    revoked = await accounts.revoke_key(account_id, member.key.id)
    clock.now += timedelta(minutes=1)
    again = await accounts.revoke_key(account_id, member.key.id)

    assert revoked.revoked_at == T0 and again == revoked
    assert await accounts.identify(hash_token(member.token)) is None


async def test_the_last_live_owner_key_cannot_be_revoked(accounts, clock):
    account_id = await accounts.create_account("acme")
    first = await accounts.mint_key(account_id, Role.OWNER)
    second = await accounts.mint_key(account_id, Role.OWNER, expires_at=T0 + timedelta(hours=1))

    await accounts.revoke_key(account_id, first.key.id)
    with pytest.raises(LastOwnerKey):
        await accounts.revoke_key(account_id, second.key.id)
    clock.now += timedelta(hours=1)  # now expired: revoking it takes nothing away
    assert (await accounts.revoke_key(account_id, second.key.id)).revoked_at == clock.now


async def test_two_owners_revoking_each_other_at_once_cannot_both_succeed(accounts, store):
    account_id = await accounts.create_account("acme")
    a = await accounts.mint_key(account_id, Role.OWNER)
    b = await accounts.mint_key(account_id, Role.OWNER)

    results = await asyncio.gather(
        accounts.revoke_key(account_id, a.key.id),
        accounts.revoke_key(account_id, b.key.id),
        return_exceptions=True,
    )

    assert sorted(type(r).__name__ for r in results) == ["ApiKey", "LastOwnerKey"]
    assert [k.role for k in store.state.values() if k.revoked_at is None] == ["OWNER"]


async def test_a_key_of_another_account_is_not_found(accounts):
    mine = await accounts.create_account("acme")
    theirs = await accounts.create_account("globex")
    await accounts.mint_key(mine, Role.OWNER)
    their_key = await accounts.mint_key(theirs, Role.MEMBER)
    with pytest.raises(NotFound):
        await accounts.revoke_key(mine, their_key.key.id)
    with pytest.raises(NotFound):
        await accounts.revoke_key(mine, uuid.uuid4())
    assert await accounts.identify(hash_token(their_key.token)) is not None


async def test_live_keys_are_capped_and_revoked_ones_free_a_place(store, clock):
    accounts = AccountService(store, clock=clock, live_keys_quota=2)
    account_id = await accounts.create_account("acme")
    await accounts.mint_key(account_id, Role.OWNER)
    member = await accounts.mint_key(account_id, Role.MEMBER)
    with pytest.raises(QuotaExceeded):
        await accounts.mint_key(account_id, Role.MEMBER)
    await accounts.revoke_key(account_id, member.key.id)
    await accounts.mint_key(account_id, Role.MEMBER)


async def test_the_list_pages_newest_first(accounts, clock):
    account_id = await accounts.create_account("acme")
    made = []
    for minute in range(3):
        clock.now = T0 + timedelta(minutes=minute)
        made.append((await accounts.mint_key(account_id, Role.MEMBER)).key)
    first = await accounts.list_keys(account_id, limit=2, cursor=None)
    rest = await accounts.list_keys(account_id, limit=2, cursor=first.next_cursor)
    assert first.keys + rest.keys == made[::-1] and rest.next_cursor is None


def _key(role: str, **fields: object) -> ApiKey:
    values = {
        "id": uuid.uuid4(),
        "account_id": uuid.UUID(int=1),
        "role": role,
        "label": None,
        "token_prefix": "rhk_abcd",
        "created_at": T0,
        "expires_at": None,
        "last_used_at": None,
        "revoked_at": None,
    }
    return ApiKey(**(values | fields))


def test_only_revoking_the_one_live_owner_leaves_no_owner():
    owner, other_owner, admin = _key("OWNER"), _key("OWNER"), _key("ADMIN")
    assert leaves_no_owner(owner, [owner, admin])
    assert not leaves_no_owner(owner, [owner, other_owner])
    assert not leaves_no_owner(admin, [admin])
    assert not leaves_no_owner(owner, [other_owner])  # not live itself: nothing changes


def test_use_is_noted_once_per_key_with_its_latest_minute():
    usage = KeyUsage()
    key = _key("MEMBER")
    for seconds in (0, 20, 45, 75):
        usage.saw(key, T0 + timedelta(seconds=seconds))
    assert usage.take() == {key.id: datetime(2026, 5, 1, 12, 1, tzinfo=UTC)}
    assert usage.take() == {}


def test_use_already_stored_for_this_minute_is_not_noted_again():
    usage = KeyUsage()
    stored = _key("MEMBER", last_used_at=datetime(2026, 5, 1, 12, 0, tzinfo=UTC))
    usage.saw(stored, T0)
    assert usage.take() == {}
    usage.saw(stored, T0 + timedelta(minutes=1))
    assert usage.take() == {stored.id: datetime(2026, 5, 1, 12, 1, tzinfo=UTC)}


def test_noted_keys_are_bounded_but_a_noted_key_still_moves_on():
    usage = KeyUsage(max_keys=2)
    a, b, c = _key("MEMBER"), _key("MEMBER"), _key("MEMBER")
    for key in (a, b, c):
        usage.saw(key, T0)
    usage.saw(a, T0 + timedelta(minutes=1))
    assert usage.take() == {a.id: T0.replace(minute=1, second=0), b.id: T0.replace(second=0)}


async def test_use_is_written_at_most_once_per_key_per_flush_in_one_write(accounts, store, clock):
    account_id = await accounts.create_account("acme")
    keys = [(await accounts.mint_key(account_id, Role.MEMBER)).token for _ in range(3)]
    for _ in range(5):
        for token in keys:
            accounts.saw(await accounts.identify(hash_token(token)))

    assert await accounts.record_usage() == 3
    assert len(store.use_writes) == 1
    assert await accounts.record_usage() == 0  # nothing new: no write at all
    for token in keys:  # same minute, already stored: not noted again
        accounts.saw(await accounts.identify(hash_token(token)))
    assert await accounts.record_usage() == 0
    assert len(store.use_writes) == 1
    listed = await accounts.list_keys(account_id, limit=10, cursor=None)
    assert {k.last_used_at for k in listed.keys} == {T0.replace(second=0)}


async def test_a_stored_use_never_moves_back(store):
    accounts = AccountService(store, clock=Clock())
    account_id = await accounts.create_account("acme")
    key = (await accounts.mint_key(account_id, Role.MEMBER)).key
    later = T0 + timedelta(minutes=3)
    await store.record_use({key.id: later})
    await store.record_use({key.id: T0, uuid.uuid4(): T0})
    assert store.state[key.id] == replace(key, last_used_at=later)
