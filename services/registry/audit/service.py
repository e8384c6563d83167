"""The account's audit log, as its OWNER and ADMIN keys read it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from services.registry.audit.models import AuditEntry, AuditRecord
from services.registry.errors import parse_id
from shared.pagination import after_cursor, cut_page


class AuditLog(Protocol):
    """Reads of the audit log, each inside one account (the rooms' transactions write it)."""

    async def page(
        self,
        account_id: UUID,
        *,
        since: datetime | None,
        limit: int,
        after: tuple[datetime, UUID] | None,
    ) -> list[AuditEntry]:
        """At most `limit` of the account's entries made at or after `since` (None: any),
        newest first by (created_at, id), those before `after`."""


@dataclass(frozen=True)
class AuditPage:
    entries: list[AuditRecord]
    next_cursor: str | None


class AuditService:
    """Pages of one account's audit entries, newest first."""

    def __init__(self, log: AuditLog) -> None:
        self._log = log

    async def list(
        self, account_id: str, *, since: datetime | None, limit: int, cursor: str | None
    ) -> AuditPage:
        after = after_cursor(cursor)
        rows = await self._log.page(parse_id(account_id), since=since, limit=limit + 1, after=after)
        rows, next_cursor = cut_page(rows, limit, lambda e: (e.created_at, e.id))
        return AuditPage([AuditRecord.of(e) for e in rows], next_cursor)
