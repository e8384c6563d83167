"""AccountRepository's contract, on the fake and on Postgres alike."""

from __future__ import annotations

import uuid

import pytest

from services.registry.accounts.service import ApiKeyRow, KeyOwner
from tests.support.registry_contracts import subject_fixture

pytestmark = pytest.mark.integration

subject = subject_fixture("accounts")


async def test_an_account_exists_once_inserted(subject):
    account_id = uuid.uuid4()
    assert await subject.repo.account_exists(account_id) is False
    await subject.repo.insert_account(account_id, "acme")
    assert await subject.repo.account_exists(account_id) is True


async def test_a_key_is_found_by_its_digest_only(subject):
    account_id = uuid.uuid4()
    await subject.repo.insert_account(account_id, "acme")
    key = ApiKeyRow(uuid.uuid4(), account_id, "ADMIN", "ab" * 32, "rhk_abcdef")
    await subject.repo.insert_key(key)
    assert await subject.repo.find_key_owner("ab" * 32) == KeyOwner(account_id, "ADMIN")
    assert await subject.repo.find_key_owner("cd" * 32) is None
    assert await subject.repo.find_key_owner("rhk_abcdef") is None
