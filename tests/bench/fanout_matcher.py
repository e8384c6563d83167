"""`python -m tests.bench.fanout_matcher`: matcher throughput and index memory (prints a table).

Builds an index of `--webhooks` webhooks over `--accounts` accounts (ten rooms' worth of
scoped webhooks, the rest unscoped), and of `--workflows` workflows alike (none by default),
then times `SubscriptionIndex.match` and the whole routing decision (`route`: parse, match,
render, build requests) on realistic events. Numbers are for comparison between runs on one
machine; nothing gates on them.
"""

from __future__ import annotations

import argparse
import gc
import random
import time
import uuid
from datetime import UTC, datetime

from services.fanout.index import Subscriptions
from services.fanout.routing import route
from shared.events import CATALOG, Scope, event_names
from shared.kafka import dumps
from shared.messages import WebhookRecord, WorkflowRecord

ROOM_EVENTS = event_names(Scope.ROOM)
ORG_EVENTS = event_names(Scope.ORGANIZATION)


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def build(
    indexes: Subscriptions,
    *,
    webhooks: int,
    workflows: int,
    accounts: int,
    rooms: int,
    rng: random.Random,
):
    orgs = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(accounts)]
    now = datetime.now(UTC)
    for n in range(webhooks + workflows):
        org = orgs[n % accounts]
        events = rng.sample(ROOM_EVENTS, rng.randint(1, 5))
        if rng.random() < 0.2:
            events += rng.sample(ORG_EVENTS, 2)
        scoped = rng.random() < 0.3
        fields = {
            "id": str(uuid.UUID(int=rng.getrandbits(128))),
            "organization_id": org,
            "events": events,
            "room_id": f"room-{rng.randrange(rooms)}" if scoped else None,
            "enabled": rng.random() < 0.95,
            "revision": 1,
            "created_at": now,
            "updated_at": now,
        }
        if n < webhooks:
            indexes.webhooks.apply(
                WebhookRecord(**fields, name=None, url=f"https://hooks.example.com/{n}")
            )
        else:
            indexes.workflows.apply(
                WorkflowRecord(**fields, name=f"wf-{n}", language="ts", version=1)
            )
    return orgs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--webhooks", type=int, default=100_000)
    parser.add_argument("--workflows", type=int, default=0)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--rooms", type=int, default=20, help="rooms per account")
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    rng = random.Random(7)

    gc.collect()
    before = rss_mb()
    indexes = Subscriptions()
    index = indexes.webhooks
    started = time.perf_counter()
    orgs = build(
        indexes,
        webhooks=args.webhooks,
        workflows=args.workflows,
        accounts=args.accounts,
        rooms=args.rooms,
        rng=rng,
    )
    build_s = time.perf_counter() - started
    gc.collect()
    after = rss_mb()

    queries = []
    for _ in range(args.events):
        org = rng.choice(orgs)
        if rng.random() < 0.9:
            name, room = rng.choice(ROOM_EVENTS), f"room-{rng.randrange(args.rooms)}"
        else:
            name, room = rng.choice(ORG_EVENTS), None
        queries.append((org, name, room, CATALOG[name].scope))
    started = time.perf_counter()
    matched = deliveries = 0
    for org, name, room, scope in queries:
        ids = index.match(org, name, room, scope)
        deliveries += len(ids)
        matched += bool(ids)
    match_s = time.perf_counter() - started

    now = datetime.now(UTC)
    raws = [dumps(_event(org, name, room, now)) for org, name, room, _ in queries[:20_000]]
    started = time.perf_counter()
    routed = runs = 0
    for raw in raws:
        outcome = route(raw, indexes, now=now)
        routed += len(getattr(outcome, "requests", ()))
        runs += len(getattr(outcome, "runs", ()))
    route_s = time.perf_counter() - started

    rows = [
        ("webhooks / workflows / accounts",
         f"{len(index):,} / {len(indexes.workflows):,} / {args.accounts:,}"),
        ("index build", f"{build_s:.2f} s"),
        ("RSS before -> after build", f"{before:.0f} MB -> {after:.0f} MB (+{after - before:.0f})"),
        ("match() calls/s", f"{len(queries) / match_s:,.0f}"),
        ("events with >= 1 match", f"{matched / len(queries):.0%}"),
        ("matched events/s (match only)", f"{matched / match_s:,.0f}"),
        ("route() events/s (parse+match+render)", f"{len(raws) / route_s:,.0f}"),
        ("delivery requests/s (route)", f"{routed / route_s:,.0f}"),
        ("workflow run requests/s (route)", f"{runs / route_s:,.0f}"),
    ]  # fmt: skip
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


def _event(org: str, name: str, room: str | None, now: datetime) -> dict:
    user = {"id": "user-1", "name": "Ada", "token": "secret-token"}
    body: dict = {
        "id": str(uuid.uuid4()),
        "event": name,
        "timestamp": now.isoformat(),
        "organization_id": org,
        "room": None,
    }
    if room is None:
        body["member"] = {"id": "user-1", "role": "ADMIN"}
    elif name.startswith("user."):
        body.update(room={"id": room}, user=user)
    elif name == "session.closed":
        body.update(room={"id": room, "name": "Standup"}, users=[user])
    elif name.startswith("participant."):
        body.update(room={"id": room, "name": "Standup"}, user=user)
    else:
        body["room"] = {"id": room, "name": "Standup"}
    return body


if __name__ == "__main__":
    main()
