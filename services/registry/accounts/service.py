"""Accounts and their API keys: minted (token shown once, digest kept), listed, revoked, and
found by the Authorizer for each request."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

import structlog

from services.registry import keys
from services.registry.accounts.models import ApiKey, ApiKeyInfo, ApiKeyRow, KeyOwner
from services.registry.accounts.usage import KeyUsage
from services.registry.audit.models import Actor, AuditEntry
from services.registry.audit.recorder import audit_entry, changed_fields
from services.registry.errors import InvalidChange, NotFound, QuotaExceeded
from services.registry.policy import Role
from shared.pagination import after_cursor, cut_page

log = structlog.get_logger(__name__)

# Live keys an account may hold at once (revoked and expired ones do not count).
LIVE_KEYS_PER_ACCOUNT = 100


class AccountKeyWrites(Protocol):
    """One account's keys in one transaction that holds the account's lock: two of them on
    the same account take turns, so what one decides from `live_keys` still holds when its
    write is kept. Everything written is kept when the `async with` ends, nothing when it
    raises."""

    async def live_keys(self, now: datetime) -> list[ApiKey]:
        """The account's keys that are neither revoked nor expired at `now`."""

    async def get(self, key_id: UUID) -> ApiKey | None:
        """The key, when it is this account's (revoked or expired included)."""

    async def insert(self, key: ApiKeyRow) -> ApiKey: ...

    async def revoke(self, key_id: UUID, now: datetime) -> ApiKey:
        """Set `revoked_at` to `now` on a key of this account; returns what is stored."""

    async def audit(self, entry: AuditEntry) -> None:
        """Add to the audit log, kept with this transaction."""


class AccountRepository(Protocol):
    """Accounts and their keys. A key is found by its token's SHA-256 only, and only while it
    is live; a key's account must exist; no read answers a token or a digest."""

    async def insert_account(self, account_id: UUID, name: str) -> None: ...

    async def account_exists(self, account_id: UUID) -> bool: ...

    def keys_of(self, account_id: UUID) -> AbstractAsyncContextManager[AccountKeyWrites]:
        """The account's keys to change, under its lock; NotFound when there is no account."""

    async def find_key(self, token_sha256: str, *, now: datetime) -> ApiKey | None:
        """The key with this digest, when it is not revoked and not expired at `now`."""

    async def page_keys(
        self, account_id: UUID, *, limit: int, after: tuple[datetime, UUID] | None
    ) -> list[ApiKey]:
        """At most `limit` of the account's keys, newest first by (created_at, id), those
        before `after`."""

    async def record_use(self, used: Mapping[UUID, datetime]) -> None:
        """Set each key's `last_used_at` to its moment, never moving one back; unknown ids
        are ignored. One statement, whatever the number of keys."""


class LastOwnerKey(Exception):
    """Revoking the key would leave its account without a live OWNER key."""


@dataclass(frozen=True)
class MintedKey:
    key: ApiKey
    token: str  # shown once; only its digest is stored


@dataclass(frozen=True)
class KeyPage:
    keys: list[ApiKey]
    next_cursor: str | None


def leaves_no_owner(target: ApiKey, live: list[ApiKey]) -> bool:
    """Revoking `target` would leave none of the account's `live` keys an OWNER (revoking a
    key that is not live changes nothing)."""
    if target.role != Role.OWNER or all(k.id != target.id for k in live):
        return False
    return not any(k.role == Role.OWNER and k.id != target.id for k in live)


def _fields(key: ApiKey) -> dict[str, Any]:
    """The key as its account sees it (never the key itself)."""
    return ApiKeyInfo.of(key).model_dump(mode="json")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class AccountService:
    """Creates accounts; mints, lists and revokes their keys; finds the key of a request and
    notes its use (written by `record_usage`, once a minute, beside the API)."""

    def __init__(
        self,
        accounts: AccountRepository,
        *,
        clock: Callable[[], datetime] = _utcnow,
        usage: KeyUsage | None = None,
        live_keys_quota: int = LIVE_KEYS_PER_ACCOUNT,
    ) -> None:
        self._accounts = accounts
        self._clock = clock
        self._usage = usage or KeyUsage()
        self._quota = live_keys_quota

    async def create_account(self, name: str) -> UUID:
        account_id = uuid.uuid4()
        await self._accounts.insert_account(account_id, name)
        log.info("account.created", account_id=str(account_id))
        return account_id

    async def account_exists(self, account_id: UUID) -> bool:
        return await self._accounts.account_exists(account_id)

    async def mint_key(
        self,
        account_id: UUID,
        role: Role,
        *,
        label: str | None = None,
        expires_at: datetime | None = None,
        actor: Actor | None = None,
    ) -> MintedKey:
        """A new key; NotFound (no account), QuotaExceeded, InvalidChange (expiresAt).
        `actor` (None: the platform, e.g. the admin CLI) is audited."""
        now = self._clock()
        if expires_at is not None and expires_at <= now:
            raise InvalidChange("expiresAt", "must be in the future")
        token = keys.new_token()
        row = ApiKeyRow(
            id=uuid.uuid4(),
            account_id=account_id,
            role=role.value,
            token_sha256=keys.hash_token(token),
            token_prefix=keys.display_prefix(token),
            created_at=now,
            label=label,
            expires_at=expires_at,
        )
        async with self._accounts.keys_of(account_id) as account_keys:
            if len(await account_keys.live_keys(now)) >= self._quota:
                raise QuotaExceeded("live API keys", self._quota)
            key = await account_keys.insert(row)
            changes = changed_fields(None, _fields(key))
            await account_keys.audit(
                audit_entry(actor, str(account_id), "api_key.created", key.id, changes, now=now)
            )
        log.info("api_key.created", account_id=str(account_id), key_id=str(key.id), role=role.value)
        return MintedKey(key, token)

    async def create_key(self, account_id: UUID, role: Role) -> str:
        """Mint a key with no label or expiry; its token. NotFound."""
        return (await self.mint_key(account_id, role)).token

    async def list_keys(self, account_id: UUID, *, limit: int, cursor: str | None) -> KeyPage:
        rows = await self._accounts.page_keys(
            account_id, limit=limit + 1, after=after_cursor(cursor)
        )
        page, next_cursor = cut_page(rows, limit, lambda k: (k.created_at, k.id))
        return KeyPage(page, next_cursor)

    async def revoke_key(
        self, account_id: UUID, key_id: UUID, *, actor: Actor | None = None
    ) -> ApiKey:
        """Revoke a key of the account (again: no change); NotFound, LastOwnerKey."""
        now = self._clock()
        async with self._accounts.keys_of(account_id) as account_keys:
            target = await account_keys.get(key_id)
            if target is None:
                raise NotFound(str(key_id))
            if target.revoked_at is not None:
                return target
            if leaves_no_owner(target, await account_keys.live_keys(now)):
                raise LastOwnerKey(str(key_id))
            revoked = await account_keys.revoke(key_id, now)
            changes = changed_fields(_fields(target), _fields(revoked))
            await account_keys.audit(
                audit_entry(actor, str(account_id), "api_key.revoked", key_id, changes, now=now)
            )
        log.info("api_key.revoked", account_id=str(account_id), key_id=str(key_id))
        return revoked

    async def identify(self, token_sha256: str) -> ApiKey | None:
        """The live key with this digest."""
        return await self._accounts.find_key(token_sha256, now=self._clock())

    async def authenticate(self, token: str) -> KeyOwner | None:
        key = await self.identify(keys.hash_token(token))
        return key.owner if key is not None else None

    def saw(self, key: ApiKey) -> None:
        """Note that `key` was used now; no I/O."""
        self._usage.saw(key, self._clock())

    async def record_usage(self) -> int:
        """Write the use noted since the last call; how many keys it touched."""
        used = self._usage.take()
        if used:
            await self._accounts.record_use(used)
        return len(used)
