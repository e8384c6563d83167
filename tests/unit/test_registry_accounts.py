"""AccountService against the in-memory repository: keys shown once, kept as digests."""

from __future__ import annotations

import uuid

import pytest

from services.registry.accounts.service import AccountService, KeyOwner
from services.registry.errors import NotFound
from services.registry.policy import Role
from tests.support.registry_fakes import FakeAccounts


async def test_a_key_authenticates_as_its_account_and_role_and_only_its_digest_is_kept():
    store = FakeAccounts()
    accounts = AccountService(store)
    account_id = await accounts.create_account("acme")
    token = await accounts.create_key(account_id, Role.MEMBER)
    assert await accounts.authenticate(token) == KeyOwner(account_id, "MEMBER")
    assert await accounts.authenticate(token + "x") is None
    assert all(token not in (key.token_sha256, key.token_prefix) for key in store.keys.values())


async def test_no_key_for_an_account_that_does_not_exist():
    store = FakeAccounts()
    with pytest.raises(NotFound):
        await AccountService(store).create_key(uuid.uuid4(), Role.OWNER)
    assert store.keys == {}
