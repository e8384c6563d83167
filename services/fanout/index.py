"""The in-memory webhook index that fanout matches events against. Pure: no I/O.

Built from the registry's public records (`WebhookRecord`, one per webhook, newest wins by
`revision`). Matching looks up one bucket per (organization, event name): the webhooks of
every room, plus those scoped to the event's room. Only what matching needs is kept.
"""

from __future__ import annotations

import sys
from bisect import bisect_left
from dataclasses import dataclass

from shared.events import Scope
from shared.messages import WebhookRecord


@dataclass(frozen=True, slots=True)
class IndexedWebhook:
    """What the index holds per webhook, enabled or not (disabled ones keep their revision)."""

    organization_id: str
    events: tuple[str, ...]
    room_id: str | None  # None: every room of the organization, and organization events
    enabled: bool
    revision: int


class _Bucket:
    """The enabled webhooks of one (organization, event name), as sorted tuples.

    Tuples, not sets: most buckets hold one to a few ids, and a sorted tuple is both the
    smallest container and the answer `match` returns. Changes rebuild a tuple (O(n) in the
    bucket's size); they are rare next to matches.
    """

    __slots__ = ("rooms", "unscoped")

    def __init__(self) -> None:
        self.unscoped: tuple[str, ...] = ()
        self.rooms: dict[str, tuple[str, ...]] | None = None

    def __bool__(self) -> bool:
        return bool(self.unscoped or self.rooms)


def _with(ids: tuple[str, ...], webhook_id: str) -> tuple[str, ...]:
    at = bisect_left(ids, webhook_id)
    if at < len(ids) and ids[at] == webhook_id:
        return ids
    return (*ids[:at], webhook_id, *ids[at:])


def _without(ids: tuple[str, ...], webhook_id: str) -> tuple[str, ...]:
    at = bisect_left(ids, webhook_id)
    if at < len(ids) and ids[at] == webhook_id:
        return (*ids[:at], *ids[at + 1 :])
    return ids


class WebhookIndex:
    """Enabled webhooks by (organization, event name) and room.

    Contract: `apply` takes a record unless its revision is lower than the one held (equal
    revisions re-apply, so replays are harmless); `remove` forgets a webhook (a tombstone);
    `match` returns the ids of enabled webhooks that must receive an event, sorted. A webhook
    never matches an event of another organization.
    """

    def __init__(self) -> None:
        self._webhooks: dict[str, IndexedWebhook] = {}
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._enabled = 0

    def __len__(self) -> int:
        """Webhooks held, enabled or not."""
        return len(self._webhooks)

    def __contains__(self, webhook_id: object) -> bool:
        return webhook_id in self._webhooks

    @property
    def enabled_count(self) -> int:
        return self._enabled

    def bucket_count(self) -> int:
        """(organization, event) pairs with at least one enabled webhook: for tests and stats."""
        return len(self._buckets)

    def get(self, webhook_id: str) -> IndexedWebhook | None:
        return self._webhooks.get(webhook_id)

    def apply(self, record: WebhookRecord) -> bool:
        """Hold `record` as the webhook's state; False (and no change) when it is stale."""
        held = self._webhooks.get(record.id)
        if held is not None:
            if record.revision < held.revision:
                return False
            self._unlink(record.id, held)
        webhook_id = sys.intern(record.id)
        entry = IndexedWebhook(
            organization_id=sys.intern(record.organization_id),
            events=tuple(sys.intern(e) for e in dict.fromkeys(record.events)),
            room_id=sys.intern(record.room_id) if record.room_id is not None else None,
            enabled=record.enabled,
            revision=record.revision,
        )
        self._webhooks[webhook_id] = entry
        if entry.enabled:
            self._link(webhook_id, entry)
        return True

    def remove(self, webhook_id: str) -> bool:
        """Forget a deleted webhook; False when it was not held."""
        held = self._webhooks.pop(webhook_id, None)
        if held is None:
            return False
        self._unlink(webhook_id, held)
        return True

    def match(
        self, organization_id: str, event: str, room_id: str | None, scope: Scope | str
    ) -> list[str]:
        """Ids of the enabled webhooks subscribed to this event, sorted.

        Room events reach the organization's unscoped webhooks and those of `room_id`;
        organization events reach only unscoped webhooks.
        """
        bucket = self._buckets.get((organization_id, event))
        if bucket is None:
            return []
        if scope == Scope.ROOM and room_id is not None and bucket.rooms is not None:
            scoped = bucket.rooms.get(room_id)
            if scoped is not None:
                return sorted((*bucket.unscoped, *scoped))
        return list(bucket.unscoped)

    def _link(self, webhook_id: str, entry: IndexedWebhook) -> None:
        self._enabled += 1
        for event in entry.events:
            key = (entry.organization_id, event)
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket()
            if entry.room_id is None:
                bucket.unscoped = _with(bucket.unscoped, webhook_id)
            else:
                if bucket.rooms is None:
                    bucket.rooms = {}
                bucket.rooms[entry.room_id] = _with(bucket.rooms.get(entry.room_id, ()), webhook_id)

    def _unlink(self, webhook_id: str, entry: IndexedWebhook) -> None:
        if not entry.enabled:
            return
        self._enabled -= 1
        for event in entry.events:
            key = (entry.organization_id, event)
            bucket = self._buckets.get(key)
            if bucket is None:
                continue
            if entry.room_id is None:
                bucket.unscoped = _without(bucket.unscoped, webhook_id)
            elif bucket.rooms is not None and entry.room_id in bucket.rooms:
                room = _without(bucket.rooms[entry.room_id], webhook_id)
                if room:
                    bucket.rooms[entry.room_id] = room
                else:
                    del bucket.rooms[entry.room_id]
                    if not bucket.rooms:
                        bucket.rooms = None
            if not bucket:
                del self._buckets[key]
