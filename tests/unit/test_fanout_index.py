"""The subscription index: which webhooks and workflows receive which event (pure, tables).

Every behaviour runs once per record kind: webhooks and workflows share one index type.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from services.fanout.index import SubscriptionIndex, Subscriptions
from shared.events import Scope
from shared.messages import WebhookRecord, WorkflowRecord

ORG_A, ORG_B = "org-a", "org-b"
NOW = datetime(2026, 5, 29, 10, 6, tzinfo=UTC)
JOINED, LEFT, MEMBER_ADDED = "participant.joined", "participant.left", "member.added"


@dataclass(frozen=True)
class Spec:
    """A subscription, built as a record of whichever kind the test runs for."""

    id: str
    org: str = ORG_A
    events: tuple[str, ...] = (JOINED,)
    room: str | None = None
    enabled: bool = True
    revision: int = 1
    version: int = 1

    def record(self, kind: str) -> WebhookRecord | WorkflowRecord:
        common = {
            "id": self.id,
            "organization_id": self.org,
            "events": list(self.events),
            "room_id": self.room,
            "enabled": self.enabled,
            "revision": self.revision,
            "created_at": NOW,
            "updated_at": NOW,
        }
        if kind == "webhook":
            return WebhookRecord(**common, name=None, url=f"https://example.com/{self.id}")
        return WorkflowRecord(**common, name=self.id, language="ts", version=self.version)


def hook(record_id: str, **fields) -> Spec:
    return Spec(record_id, **fields)


@pytest.fixture(params=["webhook", "workflow"])
def kind(request) -> str:
    return request.param


def index_of(kind: str, *specs: Spec) -> SubscriptionIndex:
    index = SubscriptionIndex()
    for spec in specs:
        index.apply(spec.record(kind))
    return index


def room_event(index: SubscriptionIndex, room: str, *, org: str = ORG_A, event: str = JOINED):
    return index.match(org, event, room, Scope.ROOM)


def org_event(index: SubscriptionIndex, *, org: str = ORG_A, event: str = MEMBER_ADDED):
    return index.match(org, event, None, Scope.ORGANIZATION)


EVERY_ROOM = hook("every-room")
ROOM_1 = hook("room-1-only", room="room-1")
ROOM_2 = hook("room-2-only", room="room-2")
ORG_HOOK = hook("org-wide", events=(MEMBER_ADDED, JOINED))
ORG_HOOK_SCOPED = hook("org-scoped", events=(MEMBER_ADDED,), room="room-1")
OTHER_ACCOUNT = hook("b-every-room", org=ORG_B, events=(JOINED, MEMBER_ADDED))
LEFT_ONLY = hook("left-only", events=(LEFT,))
ALL = (EVERY_ROOM, ROOM_1, ROOM_2, ORG_HOOK, ORG_HOOK_SCOPED, OTHER_ACCOUNT, LEFT_ONLY)


@pytest.mark.parametrize(
    ("case", "org", "event", "room", "scope", "expected"),
    [
        ("scoped gets its room", ORG_A, JOINED, "room-1", Scope.ROOM,
         ["every-room", "org-wide", "room-1-only"]),
        ("other room's scoped does not", ORG_A, JOINED, "room-2", Scope.ROOM,
         ["every-room", "org-wide", "room-2-only"]),
        ("unscoped gets any room", ORG_A, JOINED, "room-99", Scope.ROOM,
         ["every-room", "org-wide"]),
        ("event filtering", ORG_A, LEFT, "room-1", Scope.ROOM, ["left-only"]),
        ("unsubscribed event", ORG_A, "session.started", "room-1", Scope.ROOM, []),
        ("org event: unscoped only", ORG_A, MEMBER_ADDED, None, Scope.ORGANIZATION, ["org-wide"]),
        ("org event ignores a room", ORG_A, MEMBER_ADDED, "room-1", Scope.ORGANIZATION,
         ["org-wide"]),
        ("other account", ORG_B, JOINED, "room-1", Scope.ROOM, ["b-every-room"]),
        ("other account's org event", ORG_B, MEMBER_ADDED, None, Scope.ORGANIZATION,
         ["b-every-room"]),
        ("unknown account", "org-c", JOINED, "room-1", Scope.ROOM, []),
    ],
)  # fmt: skip
def test_matches_by_organization_event_and_room(kind, case, org, event, room, scope, expected):
    assert index_of(kind, *ALL).match(org, event, room, scope) == expected, case


@pytest.mark.parametrize(
    ("case", "records", "room", "expected"),
    [
        ("disabled matches nothing", [hook("h", enabled=False)], "r", []),
        ("disabled scoped matches nothing", [hook("h", room="r", enabled=False)], "r", []),
        ("disabling later", [hook("h"), hook("h", enabled=False, revision=2)], "r", []),
        ("re-enabling", [hook("h"), hook("h", enabled=False, revision=2),
                         hook("h", revision=3)], "r", ["h"]),
        ("stale enable ignored", [hook("h", enabled=False, revision=5), hook("h", revision=4)],
         "r", []),
        ("stale disable ignored", [hook("h", revision=5), hook("h", enabled=False, revision=4)],
         "r", ["h"]),
        ("equal revision re-applies", [hook("h", revision=2), hook("h", revision=2)], "r", ["h"]),
        ("events change", [hook("h"), hook("h", events=(LEFT,), revision=2)], "r", []),
        ("room set", [hook("h"), hook("h", room="other", revision=2)], "r", []),
        ("room moved", [hook("h", room="other"), hook("h", room="r", revision=2)], "r", ["h"]),
        ("room cleared", [hook("h", room="other"), hook("h", revision=2)], "r", ["h"]),
    ],
)  # fmt: skip
def test_applies_changes_in_revision_order(kind, case, records, room, expected):
    assert room_event(index_of(kind, *records), room) == expected, case


def test_deleted_subscriptions_match_nothing_and_leave_no_bucket_behind(kind):
    index = index_of(kind, EVERY_ROOM, ROOM_1, ORG_HOOK)
    for record_id in ("every-room", "room-1-only", "org-wide"):
        assert index.remove(record_id)
    assert room_event(index, "room-1") == []
    assert org_event(index) == []
    assert len(index) == 0
    assert index.bucket_count() == 0
    assert not index.remove("every-room")  # a repeated tombstone is harmless


def test_updates_leave_no_stale_entries_behind(kind):
    index = index_of(kind, hook("h", events=(JOINED, LEFT), room="r1"))
    index.apply(hook("h", events=(MEMBER_ADDED,), revision=2).record(kind))
    assert room_event(index, "r1") == []
    assert room_event(index, "r1", event=LEFT) == []
    assert org_event(index) == ["h"]
    assert index.bucket_count() == 1
    index.apply(hook("h", events=(MEMBER_ADDED,), enabled=False, revision=3).record(kind))
    assert index.bucket_count() == 0
    assert len(index) == 1 and index.enabled_count == 0  # held for its revision


def test_a_subscription_moved_to_another_organization_leaves_the_first(kind):
    index = index_of(kind, hook("h"))
    index.apply(hook("h", org=ORG_B, revision=2).record(kind))
    assert room_event(index, "r") == []
    assert room_event(index, "r", org=ORG_B) == ["h"]


def test_duplicate_event_names_in_a_record_match_once(kind):
    index = index_of(kind, hook("h", events=(JOINED, JOINED)))
    assert room_event(index, "r") == ["h"]
    index.remove("h")
    assert index.bucket_count() == 0


def test_matches_are_sorted_whatever_the_arrival_order(kind):
    ids = [str(uuid.UUID(int=n)) for n in range(50)]
    rng = random.Random(1)
    rng.shuffle(ids)
    index = index_of(kind, *(hook(i, room="r" if n % 2 else None) for n, i in enumerate(ids)))
    assert room_event(index, "r") == sorted(ids)


def test_large_index_never_crosses_accounts(kind):
    rng = random.Random(42)
    orgs = [f"org-{n}" for n in range(200)]
    rooms = [f"room-{n}" for n in range(5)]
    events = ["participant.joined", "participant.left", "session.started", MEMBER_ADDED]
    index = SubscriptionIndex()
    expected: dict[tuple[str, str, str | None], set[str]] = {}
    for n in range(5000):
        org, room = rng.choice(orgs), rng.choice([None, *rooms])
        subscribed = rng.sample(events, rng.randint(1, 3))
        enabled = rng.random() < 0.9
        spec = hook(f"w{n}", org=org, events=tuple(subscribed), room=room, enabled=enabled)
        index.apply(spec.record(kind))
        if enabled:
            for event in subscribed:
                expected.setdefault((org, event, room), set()).add(f"w{n}")
    assert len(index) == 5000
    for org in orgs:
        for room in rooms:
            for event in events[:3]:
                want = expected.get((org, event, None), set()) | expected.get(
                    (org, event, room), set()
                )
                assert index.match(org, event, room, Scope.ROOM) == sorted(want)
        assert org_event(index, org=org) == sorted(expected.get((org, MEMBER_ADDED, None), ()))
    for n in range(0, 5000, 2):
        index.remove(f"w{n}")
    for org in orgs:
        for room in rooms:
            assert all(int(w[1:]) % 2 for w in index.match(org, JOINED, room, Scope.ROOM))


def test_a_big_bucket_builds_and_shrinks_quickly(kind):
    ids = [str(uuid.UUID(int=n)) for n in range(10_000)]
    index = index_of(kind, *(hook(i) for i in ids))
    assert len(room_event(index, "r")) == 10_000
    for i in ids[:9_999]:
        index.remove(i)
    assert room_event(index, "r") == [ids[-1]]


@pytest.mark.parametrize(
    ("case", "records", "version"),
    [
        ("first version", [hook("w", version=1)], 1),
        ("new version", [hook("w", version=1), hook("w", version=2, revision=2)], 2),
        ("disabled keeps its version", [hook("w", version=3, enabled=False)], 3),
        ("stale version ignored", [hook("w", version=4, revision=5),
                                   hook("w", version=3, revision=4)], 4),
        ("equal revision re-applies", [hook("w", version=1, revision=2),
                                       hook("w", version=2, revision=2)], 2),
    ],
)  # fmt: skip
def test_holds_the_current_version_of_a_workflow(case, records, version):
    index = index_of("workflow", *records)
    held = index.get("w")
    assert held is not None and held.version == version, case


def test_webhooks_hold_no_version():
    held = index_of("webhook", hook("h")).get("h")
    assert held is not None and held.version is None


def test_webhooks_and_workflows_with_one_id_are_kept_apart():
    indexes = Subscriptions()
    indexes.webhooks.apply(hook("same", events=(JOINED,)).record("webhook"))
    indexes.workflows.apply(hook("same", events=(LEFT,), revision=9).record("workflow"))
    assert room_event(indexes.webhooks, "r") == ["same"]
    assert room_event(indexes.workflows, "r") == []
    assert room_event(indexes.workflows, "r", event=LEFT) == ["same"]
    assert indexes.workflows.remove("same")
    assert room_event(indexes.webhooks, "r") == ["same"]  # the webhook's revision 1 stays
    assert (indexes.of("webhook"), indexes.of("workflow"), indexes.of("room")) == (
        indexes.webhooks,
        indexes.workflows,
        None,
    )
