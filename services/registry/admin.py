"""What the registry offers tools where no HTTP API can serve: the `roomhooks` dev tool and
operators call these with a pool on the registry's database.

- Accounts and API keys: the API needs an OWNER key to begin with, so the first account and
  its keys are made here; keys are also listed and revoked here, under the same rules as
  the API's (the last live OWNER key of an account stays).
- Announcing every webhook and workflow again, through the registry's own outbox (its relay
  publishes them): a restarted dev broker has forgotten `roomhooks.registry`.

Each function writes only the registry's own schema and is safe to repeat.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import asyncpg

from services.registry import outbox
from services.registry.accounts.models import ApiKey
from services.registry.accounts.repository import PostgresAccounts
from services.registry.accounts.service import AccountService, KeyOwner
from services.registry.accounts.service import LastOwnerKey as LastOwnerKey  # for tools
from services.registry.errors import NotFound
from services.registry.policy import Role
from services.registry.settings import RegistrySettings
from services.registry.webhooks import records as webhook_records
from services.registry.webhooks.repository import WebhookSql
from services.registry.workflows import records as workflow_records
from services.registry.workflows.repository import WorkflowSql
from shared.kafka import Topics

# The roles a key may carry, by name: OWNER, ADMIN, MEMBER.
ROLES = tuple(role.value for role in Role)


class NoSuchAccount(LookupError):
    """The account id names no account."""


class NoSuchKey(LookupError):
    """The key id names no key of the account."""


# Keys read per query while listing an account's keys.
_LIST_PAGE = 500


@dataclass(frozen=True)
class AccountKeys:
    """An account and an OWNER and a MEMBER key of it (tokens: shown once, stored hashed)."""

    account_id: str
    owner_token: str
    member_token: str


def api_address() -> tuple[str, int]:
    """Where the registry's HTTP API listens (host, port), from its settings."""
    settings = RegistrySettings()
    return settings.host, settings.port


def _accounts(pool: asyncpg.Pool) -> AccountService:
    return AccountService(PostgresAccounts(pool))


async def create_account(pool: asyncpg.Pool, name: str) -> UUID:
    return await _accounts(pool).create_account(name)


async def create_key(pool: asyncpg.Pool, account_id: UUID, role: str) -> str:
    """A new key of `role` (one of ROLES); the token is returned once. NoSuchAccount."""
    try:
        return await _accounts(pool).create_key(account_id, Role(role))
    except NotFound:
        raise NoSuchAccount(str(account_id)) from None


async def account_exists(pool: asyncpg.Pool, account_id: UUID) -> bool:
    return await _accounts(pool).account_exists(account_id)


async def list_keys(pool: asyncpg.Pool, account_id: UUID) -> list[ApiKey]:
    """Every key of the account, newest first, revoked ones included. NoSuchAccount."""
    accounts = _accounts(pool)
    if not await accounts.account_exists(account_id):
        raise NoSuchAccount(str(account_id))
    found: list[ApiKey] = []
    cursor = None
    while True:
        page = await accounts.list_keys(account_id, limit=_LIST_PAGE, cursor=cursor)
        found += page.keys
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


async def revoke_key(pool: asyncpg.Pool, account_id: UUID, key_id: UUID) -> ApiKey:
    """Revoke a key of the account (again: no change); its state now. NoSuchAccount,
    NoSuchKey, LastOwnerKey (the account's last live OWNER key stays)."""
    accounts = _accounts(pool)
    if not await accounts.account_exists(account_id):
        raise NoSuchAccount(str(account_id))
    try:
        return await accounts.revoke_key(account_id, key_id)
    except NotFound:
        raise NoSuchKey(str(key_id)) from None


def keys_still_valid(account_id: str, owner: KeyOwner | None, member: KeyOwner | None) -> bool:
    """Both keys authenticate, belong to `account_id`, and carry OWNER and MEMBER."""
    try:
        wanted = UUID(account_id)
    except ValueError:
        return False
    return (
        owner is not None
        and member is not None
        and owner.account_id == wanted == member.account_id
        and owner.role == Role.OWNER.value
        and member.role == Role.MEMBER.value
    )


async def keep_or_create_account(
    pool: asyncpg.Pool, name: str, previous: AccountKeys
) -> tuple[AccountKeys, bool]:
    """`previous` when its keys still authenticate as its OWNER and MEMBER, else a new account
    named `name` with new keys. Returns (account, kept)."""
    accounts = _accounts(pool)
    if previous.owner_token and previous.member_token:
        owner = await accounts.authenticate(previous.owner_token)
        member = await accounts.authenticate(previous.member_token)
        if keys_still_valid(previous.account_id, owner, member):
            return previous, True
    account_id = await accounts.create_account(name)
    owner_token = await accounts.create_key(account_id, Role.OWNER)
    member_token = await accounts.create_key(account_id, Role.MEMBER)
    return AccountKeys(str(account_id), owner_token, member_token), False


async def reannounce(pool: asyncpg.Pool, topics: Topics) -> tuple[int, int]:
    """Enqueue every webhook's public record and every workflow's record again, in one
    transaction; the relay publishes them. Returns (webhooks, workflows)."""
    async with pool.acquire() as conn, conn.transaction():
        hooks = await WebhookSql(conn).all()
        flows = await WorkflowSql(conn).all()
        entries = [webhook_records.registry_entry(topics, row) for row in hooks]
        entries += [workflow_records.registry_entry(topics, row) for row in flows]
        if entries:
            await outbox.enqueue(conn, entries)
    return len(hooks), len(flows)
