"""The in-memory subscription indexes that fanout matches events against. Pure: no I/O.

Built from the registry's public records (`WebhookRecord` and `WorkflowRecord`, one per id,
newest wins by `revision`), one `SubscriptionIndex` per kind with the same semantics.
Matching looks up one bucket per (organization, event name): the subscriptions of every room,
plus those scoped to the event's room. Only what matching and routing need is kept.
"""

from __future__ import annotations

import sys
from bisect import bisect_left
from dataclasses import dataclass, field

from shared.events import Scope
from shared.messages import WebhookRecord, WorkflowRecord

SubscriptionRecord = WebhookRecord | WorkflowRecord


@dataclass(frozen=True, slots=True)
class IndexedSubscription:
    """What an index holds per webhook or workflow, enabled or not (disabled ones keep their
    revision)."""

    organization_id: str
    events: tuple[str, ...]
    room_id: str | None  # None: every room of the organization, and organization events
    enabled: bool
    revision: int
    version: int | None  # a workflow's code version (run requests name it); None: a webhook
    ordered: bool = False  # a webhook with `ordering: "room"`: its requests carry the order


class _Bucket:
    """The enabled subscriptions of one (organization, event name), as sorted tuples.

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


def _with(ids: tuple[str, ...], record_id: str) -> tuple[str, ...]:
    at = bisect_left(ids, record_id)
    if at < len(ids) and ids[at] == record_id:
        return ids
    return (*ids[:at], record_id, *ids[at:])


def _without(ids: tuple[str, ...], record_id: str) -> tuple[str, ...]:
    at = bisect_left(ids, record_id)
    if at < len(ids) and ids[at] == record_id:
        return (*ids[:at], *ids[at + 1 :])
    return ids


class SubscriptionIndex:
    """Enabled subscriptions of one kind (webhooks or workflows) by (organization, event name)
    and room.

    Contract: `apply` takes a record unless its revision is lower than the one held (equal
    revisions re-apply, so replays are harmless); `remove` forgets a record (a tombstone);
    `match` returns the ids of enabled subscriptions that must receive an event, sorted; `get`
    returns what is held for an id, so routing reads the current workflow `version` there. A
    subscription never matches an event of another organization.
    """

    def __init__(self) -> None:
        self._held: dict[str, IndexedSubscription] = {}
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._enabled = 0

    def __len__(self) -> int:
        """Subscriptions held, enabled or not."""
        return len(self._held)

    def __contains__(self, record_id: object) -> bool:
        return record_id in self._held

    @property
    def enabled_count(self) -> int:
        return self._enabled

    def bucket_count(self) -> int:
        """(organization, event) pairs with at least one enabled subscription: for tests and
        stats."""
        return len(self._buckets)

    def get(self, record_id: str) -> IndexedSubscription | None:
        return self._held.get(record_id)

    def apply(self, record: SubscriptionRecord) -> bool:
        """Hold `record` as the current state of its id; False (and no change) when stale."""
        held = self._held.get(record.id)
        if held is not None:
            if record.revision < held.revision:
                return False
            self._unlink(record.id, held)
        record_id = sys.intern(record.id)
        entry = IndexedSubscription(
            organization_id=sys.intern(record.organization_id),
            events=tuple(sys.intern(e) for e in dict.fromkeys(record.events)),
            room_id=sys.intern(record.room_id) if record.room_id is not None else None,
            enabled=record.enabled,
            revision=record.revision,
            version=record.version if isinstance(record, WorkflowRecord) else None,
            ordered=isinstance(record, WebhookRecord) and record.ordering == "room",
        )
        self._held[record_id] = entry
        if entry.enabled:
            self._link(record_id, entry)
        return True

    def remove(self, record_id: str) -> bool:
        """Forget a deleted record; False when it was not held."""
        held = self._held.pop(record_id, None)
        if held is None:
            return False
        self._unlink(record_id, held)
        return True

    def match(
        self, organization_id: str, event: str, room_id: str | None, scope: Scope | str
    ) -> list[str]:
        """Ids of the enabled subscriptions to this event, sorted.

        Room events reach the organization's unscoped subscriptions and those of `room_id`;
        organization events reach only unscoped subscriptions.
        """
        bucket = self._buckets.get((organization_id, event))
        if bucket is None:
            return []
        if scope == Scope.ROOM and room_id is not None and bucket.rooms is not None:
            scoped = bucket.rooms.get(room_id)
            if scoped is not None:
                return sorted((*bucket.unscoped, *scoped))
        return list(bucket.unscoped)

    def _link(self, record_id: str, entry: IndexedSubscription) -> None:
        self._enabled += 1
        for event in entry.events:
            key = (entry.organization_id, event)
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket()
            if entry.room_id is None:
                bucket.unscoped = _with(bucket.unscoped, record_id)
            else:
                if bucket.rooms is None:
                    bucket.rooms = {}
                bucket.rooms[entry.room_id] = _with(bucket.rooms.get(entry.room_id, ()), record_id)

    def _unlink(self, record_id: str, entry: IndexedSubscription) -> None:
        if not entry.enabled:
            return
        self._enabled -= 1
        for event in entry.events:
            key = (entry.organization_id, event)
            bucket = self._buckets.get(key)
            if bucket is None:
                continue
            if entry.room_id is None:
                bucket.unscoped = _without(bucket.unscoped, record_id)
            elif bucket.rooms is not None and entry.room_id in bucket.rooms:
                room = _without(bucket.rooms[entry.room_id], record_id)
                if room:
                    bucket.rooms[entry.room_id] = room
                else:
                    del bucket.rooms[entry.room_id]
                    if not bucket.rooms:
                        bucket.rooms = None
            if not bucket:
                del self._buckets[key]


@dataclass(frozen=True, slots=True)
class Subscriptions:
    """Everything fanout matches an event against: one index per registry record kind."""

    webhooks: SubscriptionIndex = field(default_factory=SubscriptionIndex)
    workflows: SubscriptionIndex = field(default_factory=SubscriptionIndex)

    def of(self, kind: str) -> SubscriptionIndex | None:
        """The index for a registry key's kind (`webhook`, `workflow`); None for others."""
        if kind == "webhook":
            return self.webhooks
        if kind == "workflow":
            return self.workflows
        return None
