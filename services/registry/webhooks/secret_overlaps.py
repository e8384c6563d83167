"""The end of a secret rotation's overlap. Delivery stops signing with the replaced secret on
its own once `previous_secret_until` has passed (each attempt compares its own time with
it); this sweep then erases that secret and its end, and audits it as the platform's change.

Exactly once with N registry replicas: a webhook is cleared by the one UPDATE that claims it
(SKIP LOCKED) and still finds its overlap ended, and its audit entry is written in that
transaction. Nothing is announced and the revision stays: the record on `roomhooks.registry`
carries neither the previous secret nor its end.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol

import structlog

from services.registry.audit.models import AuditEntry
from services.registry.audit.recorder import audit_entry, safe_change
from services.registry.background import repeating
from services.registry.webhooks.models import EndedOverlap

log = structlog.get_logger(__name__)

ACTION = "webhook.secret_overlap_ended"
# Webhooks cleared per transaction; a full batch is followed by the next at once.
BATCH = 500


def overlap_ended_entry(ended: EndedOverlap, *, now: datetime) -> AuditEntry:
    """The platform's entry for one erased previous secret: which webhook, and the fields
    cleared (the secret hidden, as every secret is; its end now null)."""
    changes = [
        safe_change("previous_secret", None),
        safe_change("previous_secret_expires_at", None),
    ]
    return audit_entry(None, str(ended.organization_id), ACTION, ended.webhook_id, changes, now=now)


class OverlapWrites(Protocol):
    """One transaction: everything written in it is kept when the `async with` ends, and
    nothing when it raises."""

    async def end_overlaps(self, *, now: datetime, limit: int) -> list[EndedOverlap]:
        """Erase the previous secret and its end of at most `limit` webhooks whose overlap
        ended at or before `now` (the earliest ended first), none that another transaction
        holds; the webhooks erased, each with the end it had."""

    async def audit(self, entry: AuditEntry) -> None:
        """Add to the audit log, kept with this transaction."""


class EndedOverlaps(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[OverlapWrites]: ...


class OverlapSweep:
    """Erases the previous secrets whose overlap has ended, a batch per transaction, each
    with one audit entry by the platform."""

    def __init__(
        self, store: EndedOverlaps, clock: Callable[[], datetime], *, batch: int = BATCH
    ) -> None:
        self._store = store
        self._clock = clock
        self._batch = batch

    async def run_once(self) -> bool:
        """One batch; True when it was full, so more may wait."""
        now = self._clock()
        async with self._store.transaction() as tx:
            ended = await tx.end_overlaps(now=now, limit=self._batch)
            for overlap in ended:
                await tx.audit(overlap_ended_entry(overlap, now=now))
        for overlap in ended:
            log.info(
                "webhook.secret_overlap_ended",
                account_id=str(overlap.organization_id),
                webhook_id=str(overlap.webhook_id),
                ended_at=overlap.ended_at.isoformat(),
            )
        return len(ended) >= self._batch


def overlaps_ended(
    store: EndedOverlaps, clock: Callable[[], datetime], *, every_s: float
) -> AbstractAsyncContextManager[None]:
    """The sweep every `every_s` (at once again after a full batch) while the block runs."""
    sweep = OverlapSweep(store, clock)
    return repeating(sweep.run_once, every_s=every_s, name="registry-secret-overlaps")
