"""asyncpg SQL: fanout's event log (`events.events`), written once per consumed batch."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from services.fanout.event_log import LoggedEvent

# One statement per batch, however many events: the rows travel as one array parameter. The
# key holds the partition key (received_at, the record's stamp): a re-read event has both the
# same, so it is recorded once.
_INSERT = (
    "INSERT INTO events.events (id, organization_id, event_id, event, room_id, status, reason,"
    " payload, webhook_ids, workflow_ids, received_at)"
    " SELECT * FROM unnest($1::events.entry[]) ON CONFLICT (id, received_at) DO NOTHING"
)


class PostgresEventLog:
    """EventLogWriter on Postgres."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def record(self, entries: Sequence[LoggedEvent]) -> None:
        if entries:
            await self._pool.execute(_INSERT, entries)
