"""The account's event log: pages of what fanout recorded, and one event with whom it reached."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from services.registry.errors import NotFound, parse_id
from services.registry.events.models import (
    EventFilters,
    EventRow,
    LoggedEvent,
    ReachedWebhook,
    ReachedWorkflow,
)
from shared.messages import delivery_id_for, run_id_for
from shared.pagination import after_cursor, cut_page

# Longer than any event id fanout accepts, or text Postgres cannot hold: it names nothing.
MAX_EVENT_ID_CHARS = 200
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class EventLog(Protocol):
    """Reads of fanout's event log and of the deliveries and executions its events reached
    (the registry writes none of them), each inside its account."""

    async def page(
        self,
        organization_id: UUID,
        filters: EventFilters,
        *,
        limit: int,
        after: tuple[datetime, UUID] | None,
    ) -> list[EventRow]:
        """At most `limit` of the account's events that pass every filter, newest first by
        (received_at, id), those before `after`; without payloads."""

    async def find(self, organization_id: UUID, event_id: str) -> EventRow | None:
        """The account's accepted event with this id, else the latest rejected one that
        carried it; with its payload."""

    async def delivery_statuses(
        self, organization_id: UUID, delivery_ids: Sequence[UUID], *, received_at: datetime
    ) -> dict[UUID, str]:
        """The status of each of these deliveries the account has (absent: none stored).
        `received_at` is their event's: fanout stamps their created_at alike, so it says
        where to look first; a delivery stamped otherwise is found all the same."""

    async def execution_statuses(
        self, organization_id: UUID, execution_ids: Sequence[UUID], *, received_at: datetime
    ) -> dict[UUID, str]:
        """The status of each of these executions the account has (absent: none recorded);
        `received_at` as for `delivery_statuses`."""


@dataclass(frozen=True)
class EventPage:
    events: list[LoggedEvent]
    next_cursor: str | None


@dataclass(frozen=True)
class EventDetail:
    event: LoggedEvent
    payload: str | None
    webhooks: list[ReachedWebhook]
    workflows: list[ReachedWorkflow]


def public_event(organization_id: UUID, row: EventRow) -> LoggedEvent:
    return LoggedEvent(
        organization_id=str(organization_id),
        id=row.event_id,
        event=row.event,
        room_id=row.room_id,
        status=row.status,
        reason=row.reason,
        webhooks=len(row.webhook_ids),
        workflows=len(row.workflow_ids),
        received_at=row.received_at,
    )


class EventLogService:
    """The events fanout read for an account, and for one of them the delivery or execution
    of each webhook and workflow it reached (kept after the webhook is deleted)."""

    def __init__(self, log: EventLog) -> None:
        self._log = log

    async def list(
        self, account_id: str, filters: EventFilters, *, limit: int, cursor: str | None
    ) -> EventPage:
        after = after_cursor(cursor)
        organization_id = parse_id(account_id)
        rows = await self._log.page(organization_id, filters, limit=limit + 1, after=after)
        rows, next_cursor = cut_page(rows, limit, lambda r: (r.received_at, r.id))
        return EventPage([public_event(organization_id, r) for r in rows], next_cursor)

    async def get(self, account_id: str, event_id: str) -> EventDetail:
        organization_id = parse_id(account_id)
        if len(event_id) > MAX_EVENT_ID_CHARS or _UNSTORABLE.search(event_id):
            raise NotFound(event_id)
        row = await self._log.find(organization_id, event_id)
        if row is None:
            raise NotFound(event_id)
        deliveries = _derived(row.webhook_ids, row.event_id, delivery_id_for)
        runs = _derived(row.workflow_ids, row.event_id, run_id_for)
        delivered, ran = {}, {}
        stamp = row.received_at
        if deliveries:
            delivered = await self._log.delivery_statuses(
                organization_id, [*deliveries.values()], received_at=stamp
            )
        if runs:
            ran = await self._log.execution_statuses(
                organization_id, [*runs.values()], received_at=stamp
            )
        return EventDetail(
            public_event(organization_id, row),
            row.payload,
            [
                ReachedWebhook(webhook_id=str(w), delivery_id=str(d), status=delivered.get(d))
                for w, d in deliveries.items()
            ],
            [
                ReachedWorkflow(workflow_id=str(w), execution_id=str(r), status=ran.get(r))
                for w, r in runs.items()
            ],
        )


def _derived(
    owner_ids: Sequence[UUID], event_id: str | None, derive: Callable[[str, str], str]
) -> dict[UUID, UUID]:
    """Each webhook's delivery id (each workflow's run id) for the event, as fanout derived it."""
    if event_id is None:
        return {}
    return {owner: UUID(derive(str(owner), event_id)) for owner in owner_ids}
