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
import json
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

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


def measure(
    *,
    webhooks: int = 100_000,
    workflows: int = 0,
    accounts: int = 10_000,
    rooms: int = 20,
    events: int = 200_000,
    seed: int = 7,
) -> dict[str, float]:
    """Build the index and time `match` and `route`; every figure as a number."""
    rng = random.Random(seed)
    gc.collect()
    before = rss_mb()
    indexes = Subscriptions()
    index = indexes.webhooks
    started = time.perf_counter()
    orgs = build(
        indexes, webhooks=webhooks, workflows=workflows, accounts=accounts, rooms=rooms, rng=rng
    )
    build_s = time.perf_counter() - started
    gc.collect()
    after = rss_mb()

    queries = sample_queries(orgs, rooms=rooms, events=events, rng=rng)
    started = time.perf_counter()
    matched = deliveries = 0
    for org, name, room, scope in queries:
        ids = index.match(org, name, room, scope)
        deliveries += len(ids)
        matched += bool(ids)
    match_s = time.perf_counter() - started

    now = datetime.now(UTC)
    raws = [dumps(event_body(org, name, room, now)) for org, name, room, _ in queries[:20_000]]
    started = time.perf_counter()
    routed = runs = 0
    for raw in raws:
        outcome = route(raw, indexes, record_stamp=now, oldest=now - timedelta(days=30))
        routed += len(getattr(outcome, "requests", ()))
        runs += len(getattr(outcome, "runs", ()))
    route_s = time.perf_counter() - started
    return {
        "webhooks": len(index),
        "workflows": len(indexes.workflows),
        "accounts": accounts,
        "build_s": build_s,
        "rss_before_mb": before,
        "rss_after_mb": after,
        "match_calls_per_s": len(queries) / match_s,
        "matched_fraction": matched / len(queries),
        "matched_events_per_s": matched / match_s,
        "route_events_per_s": len(raws) / route_s,
        "route_requests_per_s": routed / route_s,
        "route_runs_per_s": runs / route_s,
    }


def sample_queries(
    orgs: list[str], *, rooms: int, events: int, rng: random.Random
) -> list[tuple[str, str, str | None, Scope]]:
    """(organization, event name, room, scope) of `events` events: 90 % room events."""
    queries = []
    for _ in range(events):
        org = rng.choice(orgs)
        if rng.random() < 0.9:
            name, room = rng.choice(ROOM_EVENTS), f"room-{rng.randrange(rooms)}"
        else:
            name, room = rng.choice(ORG_EVENTS), None
        queries.append((org, name, room, CATALOG[name].scope))
    return queries


def rows(r: dict[str, float]) -> list[tuple[str, str]]:
    growth = r["rss_after_mb"] - r["rss_before_mb"]
    return [
        ("webhooks / workflows / accounts",
         f"{r['webhooks']:,.0f} / {r['workflows']:,.0f} / {r['accounts']:,.0f}"),
        ("index build", f"{r['build_s']:.2f} s"),
        ("RSS before -> after build",
         f"{r['rss_before_mb']:.0f} MB -> {r['rss_after_mb']:.0f} MB (+{growth:.0f})"),
        ("match() calls/s", f"{r['match_calls_per_s']:,.0f}"),
        ("events with >= 1 match", f"{r['matched_fraction']:.0%}"),
        ("matched events/s (match only)", f"{r['matched_events_per_s']:,.0f}"),
        ("route() events/s (parse+match+render)", f"{r['route_events_per_s']:,.0f}"),
        ("delivery requests/s (route)", f"{r['route_requests_per_s']:,.0f}"),
        ("workflow run requests/s (route)", f"{r['route_runs_per_s']:,.0f}"),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--webhooks", type=int, default=100_000)
    parser.add_argument("--workflows", type=int, default=0)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--rooms", type=int, default=20, help="rooms per account")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--json-out", type=Path, help="also write the figures here as JSON")
    args = parser.parse_args()
    result = measure(
        webhooks=args.webhooks,
        workflows=args.workflows,
        accounts=args.accounts,
        rooms=args.rooms,
        events=args.events,
    )
    if args.json_out:
        args.json_out.write_text(json.dumps(result))
    table = rows(result)
    width = max(len(k) for k, _ in table)
    for key, value in table:
        print(f"{key:<{width}}  {value}")


def event_body(org: str, name: str, room: str | None, now: datetime) -> dict:
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
