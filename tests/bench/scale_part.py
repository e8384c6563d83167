"""Part 9: one account at scale. Its delivery and event logs are seeded with COPY (a million
deliveries, a hundred thousand events), then read at a fixed rate through the registry; then
10,000 failed deliveries of one webhook are recovered while the bench's healthy webhooks take
their usual load, beside clean runs just before and after; then a day of a million deliveries
is removed by retention (scale_retention.py)."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from services.delivery.retention import ATTEMPTS, DELIVERIES
from services.fanout.retention import PLAN as EVENTS_PLAN
from shared.partitions import create_partitions
from tests.bench import scale_seed
from tests.bench.registry_part import get_at_rate
from tests.bench.stack import Account, Stack

WEBHOOKS = 20
# Pages followed from the first one to reach "a page deep" (50 rows a page).
DEEP_PAGES = 100
RECOVERY_TIMEOUT_S = 900.0
# Healthy runs (warm-up + window each) made while the recovery goes on, at most.
MAX_RECOVERING_RUNS = 8


@dataclass
class ScaleAccount:
    account: Account
    webhook_ids: list[str]
    recover_webhook_id: str
    recover_since: datetime
    recover_until: datetime


async def seed(
    stack: Stack,
    *,
    deliveries: int,
    events: int,
    recovery_failed: int,
    progress: Callable[[str], None],
) -> tuple[ScaleAccount, dict]:
    """An account with WEBHOOKS webhooks holding `deliveries` over 30 days, one more webhook
    holding `recovery_failed` failed ones within one hour two days ago, and `events` events
    over 7 days. Both logs sit in their days' partitions, with every day retention keeps
    partitioned, as a service that has run for that long has them."""
    assert stack.receiver is not None
    account = await stack.create_account("bench-scale")
    hook = {"events": ["session.started"], "roomId": "never-published"}
    ids = [
        (await stack.create_webhook(account, hook | {"url": stack.receiver.aside_url(f"s{n}")}))[
            "id"
        ]
        for n in range(WEBHOOKS)
    ]
    recover_id = (
        await stack.create_webhook(account, hook | {"url": stack.receiver.aside_url("recover")})
    )["id"]
    org = uuid.UUID(account.id)
    now = datetime.now(UTC)
    rng = random.Random(16)
    started = time.monotonic()
    conn = await asyncpg.connect(stack.database_url)
    try:
        for table in (DELIVERIES, ATTEMPTS, *EVENTS_PLAN.partitioned):
            await create_partitions(conn, table, today=(now - timedelta(days=30)).date(), ahead=30)
        log_shape = scale_seed.DeliveryShape(
            org,
            [uuid.UUID(i) for i in ids],
            deliveries,
            now - timedelta(days=30),
            timedelta(days=29),
        )
        attempts = await scale_seed.copy_deliveries(conn, log_shape, rng, progress)
        since = now - timedelta(days=2)
        outage = scale_seed.DeliveryShape(
            org, [uuid.UUID(recover_id)], recovery_failed, since, timedelta(hours=1), 1.0, 0.0
        )
        await scale_seed.copy_deliveries(conn, outage, rng, progress)
        rows = scale_seed.event_rows(
            org,
            log_shape.webhook_ids,
            count=events,
            first_at=now - timedelta(days=7),
            span=timedelta(days=7) - timedelta(minutes=1),
            rng=rng,
        )
        await scale_seed.copy_events(conn, rows, events, progress)
        # As a deployment's autovacuum would have left rows that came in over days.
        progress("VACUUM (ANALYZE)")
        await conn.execute(
            "VACUUM (ANALYZE) delivery.deliveries, delivery.delivery_attempts, events.events"
        )
        failed = await conn.fetchval(
            "SELECT count(*) FROM delivery.deliveries WHERE status = 'failed'"
        )
    finally:
        await conn.close()
    scale = ScaleAccount(account, ids, recover_id, since, since + timedelta(hours=1, seconds=1))
    info = {
        "deliveries": deliveries + recovery_failed,
        "failed": failed,
        "attempts": attempts,
        "events": events,
        "webhooks": WEBHOOKS + 1,
        "seed_s": round(time.monotonic() - started, 1),
    }
    return scale, info


async def _deep_cursor(stack: Stack, url: str, auth: dict[str, str], pages: int) -> str:
    """The cursor of the page `pages` pages after the first."""
    assert stack.session is not None
    cursor = ""
    for _ in range(pages):
        page_url = f"{url}{'&' if '?' in url else '?'}cursor={cursor}" if cursor else url
        async with stack.session.get(page_url, headers=auth) as response:
            answer = await response.json()
        next_cursor = answer["data"]["next_cursor"]
        if next_cursor is None:
            break
        cursor = next_cursor
    return cursor


async def reads(
    stack: Stack,
    scale: ScaleAccount,
    *,
    rate: float,
    warmup_s: float,
    duration_s: float,
    progress: Callable[[str], None],
) -> dict:
    """Latency of the two log routes, first page and DEEP_PAGES pages in, at `rate`/s."""
    base = f"{stack.api_url}/v1/accounts/{scale.account.id}"
    auth = scale.account.auth
    urls = {
        "deliveries_failed": f"{base}/webhooks/{scale.webhook_ids[0]}/deliveries?status=failed",
        "events": f"{base}/events",
    }
    out: dict = {}
    for name, url in urls.items():
        deep = await _deep_cursor(stack, url, auth, DEEP_PAGES)
        sep = "&" if "?" in url else "?"
        for label, target in ((name, url), (f"{name}_deep", f"{url}{sep}cursor={deep}")):
            out[label] = await get_at_rate(
                stack,
                target,
                auth,
                rate=rate,
                warmup_s=warmup_s,
                duration_s=duration_s,
                progress=progress,
                label=label,
            )
            out[label]["pages_in"] = DEEP_PAGES if label.endswith("_deep") else 0
    return out


async def _recover(stack: Stack, scale: ScaleAccount, delay_s: float) -> dict:
    """After `delay_s`, order the recovery and follow its job until it ends."""
    assert stack.session is not None
    await asyncio.sleep(delay_s)
    base = f"{stack.api_url}/v1/accounts/{scale.account.id}"
    body = {
        "since": scale.recover_since.isoformat(),
        "until": scale.recover_until.isoformat(),
    }
    started, wall_from = time.monotonic(), time.time()
    url = f"{base}/webhooks/{scale.recover_webhook_id}/recover"
    async with stack.session.post(url, json=body, headers=scale.account.auth) as response:
        answer = await response.json()
        if response.status != 202:
            raise RuntimeError(f"recover answered {response.status}: {answer}")
    job = answer["data"]["job"]
    while job["status"] not in ("done", "failed"):
        if time.monotonic() - started > RECOVERY_TIMEOUT_S:
            break
        await asyncio.sleep(0.5)
        async with stack.session.get(f"{base}/jobs/{job['id']}", headers=scale.account.auth) as r:
            job = (await r.json())["data"]["job"]
    return job | {
        "seconds": time.monotonic() - started,
        "from": wall_from,
        "until": time.time(),
    }


async def healthy_success_between(stack: Stack, t0: float, t1: float, exclude: str) -> int:
    """Successful deliveries attempted in [t0, t1), the recovering webhook's left out."""
    assert stack.pool is not None
    return int(
        await stack.pool.fetchval(
            "SELECT count(*) FROM delivery.deliveries WHERE status = 'success'"
            " AND last_attempt_at >= to_timestamp($1) AND last_attempt_at < to_timestamp($2)"
            " AND webhook_id <> $3::uuid",
            t0,
            t1,
            exclude,
        )
    )


async def recovery_under_load(
    stack: Stack,
    scale: ScaleAccount,
    throughput: Callable[[str], Awaitable[dict]],
    *,
    warmup_s: float,
    progress: Callable[[str], None],
) -> dict:
    """Clean run; runs with the recovery ordered as the first one's window opens, until it has
    ended (at most MAX_RECOVERING_RUNS); clean run again. Only windows opened before the job
    ended count; warm-ups and drains never do."""
    before = await throughput("clean, just before")
    recovering = asyncio.create_task(_recover(stack, scale, warmup_s))
    runs: list[dict] = []
    try:
        while not recovering.done() and len(runs) < MAX_RECOVERING_RUNS:
            opens_at = time.time() + warmup_s
            runs.append(await throughput(f"recovering, run {len(runs) + 1}") | {"at": opens_at})
        progress("waiting for the recovery job to end")
        job = await recovering
    finally:
        recovering.cancel()
    # A run whose window opened after the job ended measured no recovery.
    runs = [run for run in runs if run["at"] < job["until"]] or runs[:1]
    aside = (await stack.receiver.stats())["aside"] if stack.receiver else None
    after = await throughput("clean, just after")
    clean = (before["per_s"] + after["per_s"]) / 2
    window = sum(run["window_s"] for run in runs)
    during = sum(run["per_s"] * run["window_s"] for run in runs) / window
    healthy_pg = await healthy_success_between(
        stack, job["from"], job["until"], scale.recover_webhook_id
    )
    return {
        "per_s": during,
        "recovering_runs": len(runs),
        "clean_before_per_s": before["per_s"],
        "clean_after_per_s": after["per_s"],
        "clean_per_s": clean,
        "kept_fraction": during / clean if clean else None,
        "window_s": window,
        "recovery_s": job["seconds"],
        "recovery_total": job.get("total"),
        "recovery_done": job.get("done"),
        "recovery_status": job["status"],
        "recovered_posts_received": aside,
        "healthy_success_per_s_while_recovering": healthy_pg / max(job["seconds"], 1e-9),
        "cpu_percent": runs[-1]["cpu_percent"],
    }
