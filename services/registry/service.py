"""Registry use cases. Each change and the outbox rows announcing it share one transaction."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from uuid import UUID

import asyncpg
import structlog

from services.registry import keys, repository
from services.registry.models import Webhook, WebhookInput, WebhookPatch, WebhookWithSecret
from services.registry.policy import Role, check_room_scope
from services.registry.records import (
    public_webhook,
    registry_entry,
    tombstone_entry,
    webhook_created_entry,
    webhook_with_secret,
)
from services.registry.repository import KeyOwner, WebhookRow
from shared.kafka import Topics
from shared.pagination import after_cursor, cut_page
from shared.secrets_box import SecretsBox
from shared.signing import new_secret

log = structlog.get_logger(__name__)


class NotFound(LookupError):
    """The id names nothing inside the caller's account."""


class InvalidChange(ValueError):
    """A change that is invalid only in combination with the stored webhook."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class QuotaExceeded(Exception):
    """The account already holds as many of these as its quota allows."""

    def __init__(self, what: str, quota: int) -> None:
        super().__init__(
            f"this account holds {quota:,} {what}, its quota: delete one to create another"
        )
        self.what = what
        self.quota = quota


# Creates far from the quota take no lock (they would queue behind each other, 2-3 times
# fewer per second with 8 at once); within this many of it, each counts under the account's
# row lock. Exact unless more creates than this are in flight for one account at once, more
# than the connection pools of several replicas (ROOMHOOKS_PG_POOL_MAX_SIZE each) hold.
QUOTA_UNLOCKED_MARGIN = 64


async def check_quota(
    conn: asyncpg.Connection, table: str, organization_id: UUID, quota: int
) -> None:
    """Raise QuotaExceeded when the account holds `quota` rows of `table`; call inside the
    transaction that inserts one more."""
    held = await repository.count_owned(conn, table, organization_id)
    if held + QUOTA_UNLOCKED_MARGIN >= quota:
        await repository.lock_account(conn, organization_id)
        held = await repository.count_owned(conn, table, organization_id)
    if held >= quota:
        raise QuotaExceeded(table, quota)


@dataclass(frozen=True)
class Page:
    webhooks: list[Webhook]
    next_cursor: str | None


def parse_id(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError as exc:
        raise NotFound(value) from exc


class AccountService:
    """Accounts and API keys (for the registry's admin module; no HTTP route mints keys yet)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create_account(self, name: str) -> UUID:
        account_id = uuid.uuid4()
        async with self._pool.acquire() as conn:
            await repository.insert_account(conn, account_id=account_id, name=name)
        log.info("account.created", account_id=str(account_id))
        return account_id

    async def create_key(self, account_id: UUID, role: Role) -> str:
        """Mint a key; the token is returned once and only its digest is stored."""
        token = keys.new_token()
        async with self._pool.acquire() as conn:
            if not await repository.account_exists(conn, account_id):
                raise NotFound(str(account_id))
            await repository.insert_api_key(
                conn,
                key_id=uuid.uuid4(),
                account_id=account_id,
                role=role.value,
                token_sha256=keys.hash_token(token),
                token_prefix=keys.display_prefix(token),
            )
        log.info("api_key.created", account_id=str(account_id), role=role.value)
        return token

    async def account_exists(self, account_id: UUID) -> bool:
        async with self._pool.acquire() as conn:
            return await repository.account_exists(conn, account_id)

    async def authenticate(self, token: str) -> KeyOwner | None:
        return await self.authenticate_digest(keys.hash_token(token))

    async def authenticate_digest(self, token_sha256: str) -> KeyOwner | None:
        async with self._pool.acquire() as conn:
            return await repository.find_key_owner(conn, token_sha256)


class WebhookService:
    """Webhook CRUD for one account at a time; every query is bounded by organization_id."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        topics: Topics,
        clock: Callable[[], datetime],
        box: SecretsBox,
        *,
        quota: int = 1_000,
    ) -> None:
        self._pool = pool
        self._topics = topics
        self._clock = clock
        self._box = box
        self._quota = quota

    async def create(self, account_id: str, body: WebhookInput) -> WebhookWithSecret:
        now = self._clock()
        secret = new_secret()  # answered once, in the 201; stored sealed
        row = WebhookRow(
            id=uuid.uuid4(),
            organization_id=parse_id(account_id),
            name=body.name,
            url=body.url,
            secret_ciphertext=self._box.seal(secret),
            events=list(body.events),
            room_id=body.room_id,
            enabled=body.enabled,
            disabled_reason=None,
            retry_schedule=body.retry_schedule,
            revision=1,
            created_at=now,
            updated_at=now,
        )
        async with self._pool.acquire() as conn, conn.transaction():
            await check_quota(conn, "webhooks", row.organization_id, self._quota)
            stored = await repository.insert_webhook(conn, row)
            await repository.enqueue(
                conn,
                [
                    registry_entry(self._topics, stored),
                    webhook_created_entry(
                        self._topics, stored, event_id=str(uuid.uuid4()), now=now
                    ),
                ],
            )
        log.info("webhook.created", account_id=account_id, webhook_id=str(stored.id))
        return webhook_with_secret(stored, secret)

    async def get(self, account_id: str, webhook_id: str) -> Webhook:
        async with self._pool.acquire() as conn:
            row = await repository.get_webhook(
                conn, organization_id=parse_id(account_id), webhook_id=parse_id(webhook_id)
            )
        if row is None:
            raise NotFound(webhook_id)
        return public_webhook(row)

    async def list(self, account_id: str, *, limit: int, cursor: str | None) -> Page:
        async with self._pool.acquire() as conn:
            rows = await repository.list_webhooks(
                conn,
                organization_id=parse_id(account_id),
                limit=limit + 1,
                after=after_cursor(cursor),
            )
        rows, next_cursor = cut_page(rows, limit, lambda r: (r.created_at, r.id))
        return Page([public_webhook(r) for r in rows], next_cursor)

    async def replace(self, account_id: str, webhook_id: str, body: WebhookInput) -> Webhook:
        def change(row: WebhookRow) -> WebhookRow:
            return replace(
                row,
                url=body.url,
                events=list(body.events),
                room_id=body.room_id,
                name=body.name,
                enabled=body.enabled,
                disabled_reason=None if body.enabled else row.disabled_reason,
                retry_schedule=body.retry_schedule,
            )

        return await self._change(account_id, webhook_id, change)

    async def patch(self, account_id: str, webhook_id: str, body: WebhookPatch) -> Webhook:
        fields = body.model_fields_set

        def change(row: WebhookRow) -> WebhookRow:
            updated = replace(
                row,
                url=body.url if "url" in fields else row.url,
                events=list(body.events) if "events" in fields else row.events,
                room_id=body.room_id if "room_id" in fields else row.room_id,
                name=body.name if "name" in fields else row.name,
                enabled=body.enabled if "enabled" in fields else row.enabled,
                retry_schedule=(
                    body.retry_schedule if "retry_schedule" in fields else row.retry_schedule
                ),
            )
            if updated.enabled and not row.enabled:
                updated = replace(updated, disabled_reason=None)
            try:
                check_room_scope(updated.events, room_id=updated.room_id)
            except ValueError as exc:
                raise InvalidChange("events", str(exc)) from exc
            return updated

        return await self._change(account_id, webhook_id, change)

    async def delete(self, account_id: str, webhook_id: str) -> Webhook:
        async with self._pool.acquire() as conn, conn.transaction():
            row = await repository.delete_webhook(
                conn, organization_id=parse_id(account_id), webhook_id=parse_id(webhook_id)
            )
            if row is None:
                raise NotFound(webhook_id)
            await repository.enqueue(conn, [tombstone_entry(self._topics, row.id)])
        log.info("webhook.deleted", account_id=account_id, webhook_id=webhook_id)
        return public_webhook(row)

    async def disable(self, account_id: str, webhook_id: str, *, reason: str) -> bool:
        """Disable on another service's order (410 Gone); False when there was nothing to do."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await repository.get_webhook(
                conn,
                organization_id=parse_id(account_id),
                webhook_id=parse_id(webhook_id),
                for_update=True,
            )
            if row is None or not row.enabled:
                return False
            stored = await repository.update_webhook(
                conn,
                replace(row, enabled=False, disabled_reason=reason, updated_at=self._clock()),
            )
            await repository.enqueue(conn, [registry_entry(self._topics, stored)])
        log.warning("webhook.disabled", account_id=account_id, webhook_id=webhook_id, reason=reason)
        return True

    async def republish_all(self) -> int:
        """Announce every webhook again (a dev broker forgets its topics when it restarts)."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await repository.all_webhooks(conn)
            if rows:
                await repository.enqueue(conn, [registry_entry(self._topics, r) for r in rows])
        log.info("webhook.republished", count=len(rows))
        return len(rows)

    async def _change(
        self, account_id: str, webhook_id: str, change: Callable[[WebhookRow], WebhookRow]
    ) -> Webhook:
        async with self._pool.acquire() as conn, conn.transaction():
            row = await repository.get_webhook(
                conn,
                organization_id=parse_id(account_id),
                webhook_id=parse_id(webhook_id),
                for_update=True,
            )
            if row is None:
                raise NotFound(webhook_id)
            stored = await repository.update_webhook(
                conn, replace(change(row), updated_at=self._clock())
            )
            await repository.enqueue(conn, [registry_entry(self._topics, stored)])
        log.info("webhook.updated", account_id=account_id, webhook_id=webhook_id)
        return public_webhook(stored)
