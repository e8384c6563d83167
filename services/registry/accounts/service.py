"""Accounts and API keys: the admin module mints them (no HTTP route does yet), the API's
Authorizer finds a key's owner."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

import structlog

from services.registry import keys
from services.registry.errors import NotFound
from services.registry.policy import Role

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class KeyOwner:
    account_id: UUID
    role: str


@dataclass(frozen=True)
class ApiKeyRow:
    id: UUID
    account_id: UUID
    role: str
    token_sha256: str
    token_prefix: str  # shown to people to tell keys apart; never enough to use one


class AccountRepository(Protocol):
    """Accounts and their keys. A key is found by its token's SHA-256 only, and only while
    it is not revoked; a key's account must exist."""

    async def insert_account(self, account_id: UUID, name: str) -> None: ...

    async def account_exists(self, account_id: UUID) -> bool: ...

    async def insert_key(self, key: ApiKeyRow) -> None: ...

    async def find_key_owner(self, token_sha256: str) -> KeyOwner | None: ...


class AccountService:
    """Creates accounts and keys; a key's token is returned once and only its digest kept."""

    def __init__(self, accounts: AccountRepository) -> None:
        self._accounts = accounts

    async def create_account(self, name: str) -> UUID:
        account_id = uuid.uuid4()
        await self._accounts.insert_account(account_id, name)
        log.info("account.created", account_id=str(account_id))
        return account_id

    async def create_key(self, account_id: UUID, role: Role) -> str:
        """Mint a key; the token is returned once and only its digest is stored. NotFound."""
        token = keys.new_token()
        if not await self._accounts.account_exists(account_id):
            raise NotFound(str(account_id))
        await self._accounts.insert_key(
            ApiKeyRow(
                id=uuid.uuid4(),
                account_id=account_id,
                role=role.value,
                token_sha256=keys.hash_token(token),
                token_prefix=keys.display_prefix(token),
            )
        )
        log.info("api_key.created", account_id=str(account_id), role=role.value)
        return token

    async def account_exists(self, account_id: UUID) -> bool:
        return await self._accounts.account_exists(account_id)

    async def authenticate(self, token: str) -> KeyOwner | None:
        return await self.authenticate_digest(keys.hash_token(token))

    async def authenticate_digest(self, token_sha256: str) -> KeyOwner | None:
        return await self._accounts.find_key_owner(token_sha256)
