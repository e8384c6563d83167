"""The registry's admin module: what the dev tool keeps from a previous run."""

from __future__ import annotations

import uuid

import pytest

from services.registry.accounts.service import KeyOwner
from services.registry.admin import keys_still_valid

ACCOUNT = uuid.uuid4()
OTHER = uuid.uuid4()


@pytest.mark.parametrize(
    ("owner", "member", "valid"),
    [
        (KeyOwner(ACCOUNT, "OWNER"), KeyOwner(ACCOUNT, "MEMBER"), True),
        (None, KeyOwner(ACCOUNT, "MEMBER"), False),
        (KeyOwner(ACCOUNT, "OWNER"), None, False),
        (KeyOwner(ACCOUNT, "ADMIN"), KeyOwner(ACCOUNT, "MEMBER"), False),
        (KeyOwner(ACCOUNT, "OWNER"), KeyOwner(ACCOUNT, "OWNER"), False),
        (KeyOwner(OTHER, "OWNER"), KeyOwner(OTHER, "MEMBER"), False),
    ],
)
def test_reuses_saved_keys_only_when_both_still_fit_the_account(
    owner: KeyOwner | None, member: KeyOwner | None, valid: bool
) -> None:
    assert keys_still_valid(str(ACCOUNT), owner, member) is valid


def test_a_saved_account_id_that_is_not_a_uuid_is_not_reused() -> None:
    assert not keys_still_valid("nope", KeyOwner(ACCOUNT, "OWNER"), KeyOwner(ACCOUNT, "MEMBER"))
