"""Webhook use cases. Each change and the outbox entries announcing it share one transaction."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import lru_cache, partial
from typing import Any, Protocol
from uuid import UUID

import structlog

from services.registry.audit.models import Actor, AuditEntry
from services.registry.audit.recorder import audit_entry, changed_fields, safe_change
from services.registry.errors import InvalidChange, NotFound, parse_id
from services.registry.outbox import OutboxEntry
from services.registry.policy import check_room_scope
from services.registry.webhooks.custom_headers import masked
from services.registry.webhooks.models import (
    Webhook,
    WebhookInput,
    WebhookPatch,
    WebhookRow,
    WebhookWithSecret,
)
from services.registry.webhooks.records import (
    ListedWebhook,
    listed_document,
    public_webhook,
    registry_entry,
    tombstone_entry,
    webhook_created_entry,
    webhook_record,
    webhook_with_secret,
)
from shared.events import format_timestamp
from shared.kafka import Topics, dumps
from shared.pagination import after_cursor, cut_page
from shared.secrets_box import SecretsBox, UnreadableSecret, open_headers, seal_headers
from shared.signing import new_secret

log = structlog.get_logger(__name__)


class WebhookWrites(Protocol):
    """One transaction over webhooks and the outbox: everything written in it is kept when
    the `async with` ends, and nothing when it raises. A webhook is only ever reached
    through its account (`organization_id`)."""

    async def check_quota(self, organization_id: UUID, quota: int) -> None:
        """Raise QuotaExceeded when the account already holds `quota` webhooks; creates in
        one account near its quota take turns, so they cannot pass it together."""

    async def insert(self, row: WebhookRow) -> WebhookRow: ...

    async def get_for_update(self, organization_id: UUID, webhook_id: UUID) -> WebhookRow | None:
        """The webhook, which no other transaction changes until this one ends."""

    async def update(self, row: WebhookRow) -> WebhookRow:
        """Store the changeable fields of an existing webhook (all but ids, the secrets and
        created_at), revision + 1; returns what is stored."""

    async def replace_secret(self, row: WebhookRow) -> WebhookRow:
        """Store the secret, the previous secret and its end, and updated_at of an existing
        webhook, revision + 1; returns what is stored."""

    async def delete(self, organization_id: UUID, webhook_id: UUID) -> WebhookRow | None:
        """Delete it; its last state, None when there was none."""

    async def all(self) -> list[WebhookRow]:
        """Every account's webhooks, by id: only for announcing them all again."""

    async def enqueue(self, entries: Sequence[OutboxEntry]) -> None:
        """Add to the outbox, published in this order once the transaction is kept."""

    async def audit(self, entry: AuditEntry) -> None:
        """Add to the audit log, kept with this transaction."""


class WebhookRepository(Protocol):
    """Webhooks, each inside its account, and the outbox announcing their changes."""

    def transaction(self) -> AbstractAsyncContextManager[WebhookWrites]: ...

    async def get(self, organization_id: UUID, webhook_id: UUID) -> WebhookRow | None: ...

    async def listing(
        self,
        organization_id: UUID,
        *,
        limit: int,
        after: tuple[datetime, UUID] | None,
        only: Collection[UUID] | None = None,
    ) -> list[ListedWebhook]:
        """At most `limit`, newest first by (created_at, id), those before `after`; only
        those of `only` when it is given; each as the API shows it, but for its headers."""


@dataclass(frozen=True)
class Page:
    webhooks: list[str]  # each as the API shows it: `Webhook`'s JSON document
    next_cursor: str | None


class WebhookService:
    """Webhook CRUD for one account at a time; every change is announced on the registry
    topic (through the outbox) in the transaction that makes it."""

    def __init__(
        self,
        webhooks: WebhookRepository,
        topics: Topics,
        clock: Callable[[], datetime],
        box: SecretsBox,
        *,
        quota: int = 1_000,
    ) -> None:
        self._webhooks = webhooks
        self._topics = topics
        self._clock = clock
        self._box = box
        self._quota = quota
        # Sealed headers opened, by their ciphertext (which only new headers or a new key
        # change): a page shows up to ROOMHOOKS_REGISTRY_PAGE_SIZE_MAX webhooks, and opening
        # one costs ~30 us. (Plain headers stay in memory longer; so does the key to them.)
        self._opened = lru_cache(maxsize=4096)(partial(open_headers, box))

    async def create(
        self,
        account_id: str,
        body: WebhookInput,
        *,
        secret: str | None = None,
        actor: Actor | None = None,
    ) -> WebhookWithSecret:
        """A new webhook signing with `secret` (checked by the caller) or a new one; `actor`
        (None: the platform) is audited."""
        now = self._clock()
        secret = secret or new_secret()  # answered once, in the 201; stored sealed
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
            headers_ciphertext=seal_headers(self._box, body.headers),
            ordering=body.ordering,
            send_traceparent=body.send_traceparent,
        )
        async with self._webhooks.transaction() as tx:
            await tx.check_quota(row.organization_id, self._quota)
            stored = await tx.insert(row)
            event_id = str(uuid.uuid4())
            await tx.enqueue(
                [
                    registry_entry(self._topics, stored),
                    webhook_created_entry(self._topics, stored, event_id=event_id, now=now),
                ]
            )
            changes = changed_fields(None, self._fields(stored))
            await tx.audit(
                audit_entry(
                    actor, account_id, "webhook.created", stored.id, changes, now=self._clock()
                )
            )
        log.info("webhook.created", account_id=account_id, webhook_id=str(stored.id))
        return webhook_with_secret(stored, secret, body.headers)

    async def get(self, account_id: str, webhook_id: str, *, reveal: bool = False) -> Webhook:
        """The webhook; its header values shown only when `reveal` (OWNER and ADMIN keys)."""
        row = await self._webhooks.get(parse_id(account_id), parse_id(webhook_id))
        if row is None:
            raise NotFound(webhook_id)
        return self._shown(row, reveal=reveal)

    async def list(
        self,
        account_id: str,
        *,
        limit: int,
        cursor: str | None,
        reveal: bool = False,
        only: Collection[UUID] | None = None,
    ) -> Page:
        """A page of the account's webhooks; only those of `only` when it is given (a portal
        session's)."""
        rows = await self._webhooks.listing(
            parse_id(account_id), limit=limit + 1, after=after_cursor(cursor), only=only
        )
        rows, next_cursor = cut_page(rows, limit, lambda r: (r.created_at, r.id))
        shown = [listed_document(r, self._shown_headers(r, reveal=reveal)) for r in rows]
        return Page(shown, next_cursor)

    async def rotate_secret(
        self, account_id: str, webhook_id: str, *, overlap_s: int, actor: Actor | None = None
    ) -> WebhookWithSecret:
        """A new secret, answered once; the replaced one keeps signing beside it for
        `overlap_s` seconds (0: not at all). A rotation during an overlap ends that overlap:
        at most two secrets sign."""
        secret, now = new_secret(), self._clock()
        async with self._webhooks.transaction() as tx:
            row = await tx.get_for_update(parse_id(account_id), parse_id(webhook_id))
            if row is None:
                raise NotFound(webhook_id)
            previous = row.secret_ciphertext if overlap_s > 0 else None
            stored = await tx.replace_secret(
                replace(
                    row,
                    secret_ciphertext=self._box.seal(secret),
                    previous_secret_ciphertext=previous,
                    previous_secret_until=(
                        now + timedelta(seconds=overlap_s) if previous is not None else None
                    ),
                    updated_at=now,
                )
            )
            await tx.enqueue([registry_entry(self._topics, stored)])
            changes = [
                safe_change("secret", None),
                *changed_fields(self._fields(row), self._fields(stored)),
            ]
            await tx.audit(
                audit_entry(
                    actor, account_id, "webhook.secret_rotated", row.id, changes, now=self._clock()
                )
            )
        log.info(
            "webhook.secret_rotated",
            account_id=account_id,
            webhook_id=webhook_id,
            overlap_s=overlap_s,
        )
        return webhook_with_secret(stored, secret, self._headers(stored))

    async def replace(
        self, account_id: str, webhook_id: str, body: WebhookInput, *, actor: Actor | None = None
    ) -> Webhook:
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
                headers_ciphertext=seal_headers(self._box, body.headers),
                ordering=body.ordering,
                send_traceparent=body.send_traceparent,
            )

        return await self._change(account_id, webhook_id, change, actor)

    async def patch(
        self, account_id: str, webhook_id: str, body: WebhookPatch, *, actor: Actor | None = None
    ) -> Webhook:
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
                headers_ciphertext=(
                    seal_headers(self._box, body.headers or {})
                    if "headers" in fields
                    else row.headers_ciphertext
                ),
                ordering=body.ordering if "ordering" in fields and body.ordering else row.ordering,
                send_traceparent=(
                    body.send_traceparent
                    if body.send_traceparent is not None
                    else row.send_traceparent
                ),
            )
            if updated.enabled and not row.enabled:
                updated = replace(updated, disabled_reason=None)
            try:
                check_room_scope(updated.events, room_id=updated.room_id)
            except ValueError as exc:
                raise InvalidChange("events", str(exc)) from exc
            return updated

        return await self._change(account_id, webhook_id, change, actor)

    async def delete(
        self, account_id: str, webhook_id: str, *, actor: Actor | None = None
    ) -> Webhook:
        async with self._webhooks.transaction() as tx:
            row = await tx.delete(parse_id(account_id), parse_id(webhook_id))
            if row is None:
                raise NotFound(webhook_id)
            await tx.enqueue([tombstone_entry(self._topics, row.id)])
            await tx.audit(
                audit_entry(actor, account_id, "webhook.deleted", row.id, [], now=self._clock())
            )
        log.info("webhook.deleted", account_id=account_id, webhook_id=webhook_id)
        return public_webhook(row)

    async def disable(self, account_id: str, webhook_id: str, *, reason: str) -> bool:
        """Disable on another service's order (410 Gone, auto-disable), announced to the
        account as `webhook.disabled` with the reason; False when there was nothing to do."""
        async with self._webhooks.transaction() as tx:
            row = await tx.get_for_update(parse_id(account_id), parse_id(webhook_id))
            if row is None or not row.enabled:
                return False
            now = self._clock()
            stored = await tx.update(
                replace(row, enabled=False, disabled_reason=reason, updated_at=now)
            )
            await tx.enqueue(
                [
                    registry_entry(self._topics, stored),
                    _webhook_disabled_entry(self._topics, stored, reason=reason, now=now),
                ]
            )
            changes = changed_fields(self._fields(row), self._fields(stored))
            await tx.audit(
                audit_entry(
                    None, account_id, "webhook.disabled", row.id, changes, now=self._clock()
                )
            )
        log.warning("webhook.disabled", account_id=account_id, webhook_id=webhook_id, reason=reason)
        return True

    async def republish_all(self) -> int:
        """Announce every webhook again (a dev broker forgets its topics when it restarts)."""
        async with self._webhooks.transaction() as tx:
            rows = await tx.all()
            if rows:
                await tx.enqueue([registry_entry(self._topics, r) for r in rows])
        log.info("webhook.republished", count=len(rows))
        return len(rows)

    async def _change(
        self,
        account_id: str,
        webhook_id: str,
        change: Callable[[WebhookRow], WebhookRow],
        actor: Actor | None,
    ) -> Webhook:
        async with self._webhooks.transaction() as tx:
            row = await tx.get_for_update(parse_id(account_id), parse_id(webhook_id))
            if row is None:
                raise NotFound(webhook_id)
            stored = await tx.update(replace(change(row), updated_at=self._clock()))
            await tx.enqueue([registry_entry(self._topics, stored)])
            changes = changed_fields(self._fields(row), self._fields(stored))
            await tx.audit(
                audit_entry(
                    actor, account_id, "webhook.updated", row.id, changes, now=self._clock()
                )
            )
        log.info("webhook.updated", account_id=account_id, webhook_id=webhook_id)
        return self._shown(stored, reveal=True)  # only OWNER and ADMIN keys change webhooks

    def _fields(self, row: WebhookRow) -> dict[str, Any]:
        """The fields as the API shows them to OWNER and ADMIN keys (the recorder masks what
        the audit log may not show)."""
        return self._shown(row, reveal=True).model_dump(mode="json")

    def _headers(self, row: WebhookRow | ListedWebhook) -> dict[str, str]:
        """The custom headers opened; none when they do not open (their deliveries fail
        with the reason)."""
        if row.headers_ciphertext is None:
            return {}
        try:
            return dict(self._opened(row.headers_ciphertext))  # a copy: the cache's is shared
        except UnreadableSecret as exc:
            log.warning("webhook.headers_unreadable", webhook_id=str(row.id), error=str(exc))
            return {}

    def _shown(self, row: WebhookRow, *, reveal: bool) -> Webhook:
        return public_webhook(row, self._shown_headers(row, reveal=reveal))

    def _shown_headers(self, row: WebhookRow | ListedWebhook, *, reveal: bool) -> dict[str, str]:
        headers = self._headers(row)
        return headers if reveal else masked(headers)


def _webhook_disabled_entry(
    topics: Topics, row: WebhookRow, *, reason: str, now: datetime
) -> OutboxEntry:
    """The organization event `webhook.disabled`: the webhook's public record and why."""
    event = {
        "id": str(uuid.uuid4()),
        "event": "webhook.disabled",
        "timestamp": format_timestamp(now),
        "organization_id": str(row.organization_id),
        "room": None,
        "webhook": webhook_record(row).model_dump(mode="json"),
        "reason": reason,
    }
    return topics.events, str(row.organization_id).encode(), dumps(event)
