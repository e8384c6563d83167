"""Part 8: the registry API. Creates per second (closed loop, `concurrency` clients), then
`GET /webhooks` (the default page) at a fixed rate, open loop: each request is sent at its
scheduled time whether or not earlier ones answered, and its latency counts from that time,
so a slow server is not hidden by a client that waits for it."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

import aiohttp

from tests.bench.pipeline import percentile
from tests.bench.stack import Stack


async def create_run(
    stack: Stack, *, duration_s: float, concurrency: int, progress: Callable[[str], None]
) -> dict:
    assert stack.receiver is not None
    account = await stack.create_account("bench-registry")
    url = f"{stack.api_url}/v1/accounts/{account.id}/webhooks"
    body = {"url": stack.receiver.hook_url("registry"), "events": ["session.started"]}
    created = failed = 0
    deadline = time.monotonic() + duration_s
    meter = stack.cpu_meter(bench_pid=os.getpid())

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal created, failed
        while time.monotonic() < deadline:
            async with session.post(url, json=body, headers=account.auth) as response:
                await response.read()
                if response.status == 201:
                    created += 1
                else:
                    failed += 1

    async def show() -> None:
        while time.monotonic() < deadline:
            progress(f"POST create: {created:,} created")
            await asyncio.sleep(1)

    connector = aiohttp.TCPConnector(limit=concurrency)
    meter.start()
    started = time.monotonic()
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(show(), *(client(session) for _ in range(concurrency)))
    wall = time.monotonic() - started
    return {
        "per_s": created / wall,
        "created": created,
        "failed": failed,
        "concurrency": concurrency,
        "cpu_percent": meter.stop(),
        "account": account,
    }


async def list_run(
    stack: Stack,
    account_id: str,
    auth: dict[str, str],
    *,
    rate: float,
    warmup_s: float,
    duration_s: float,
    progress: Callable[[str], None],
) -> dict:
    url = f"{stack.api_url}/v1/accounts/{account_id}/webhooks"
    return await get_at_rate(
        stack,
        url,
        auth,
        rate=rate,
        warmup_s=warmup_s,
        duration_s=duration_s,
        progress=progress,
        label="GET list",
    )


async def get_at_rate(
    stack: Stack,
    url: str,
    auth: dict[str, str],
    *,
    rate: float,
    warmup_s: float,
    duration_s: float,
    progress: Callable[[str], None],
    label: str,
) -> dict:
    """GET `url` at `rate`/s, open loop; latency percentiles of the requests after warm-up."""
    latencies: list[float] = []
    errors = 0
    meter = stack.cpu_meter(bench_pid=os.getpid())

    async def one(session: aiohttp.ClientSession, scheduled: float, counted: bool) -> None:
        nonlocal errors
        try:
            async with session.get(url, headers=auth) as response:
                await response.read()
                ok = response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            ok = False
        if counted:
            if ok:
                latencies.append((time.monotonic() - scheduled) * 1000)
            else:
                errors += 1

    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=10)
    total = int(rate * (warmup_s + duration_s))
    warm = int(rate * warmup_s)
    tasks: set[asyncio.Task[None]] = set()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.monotonic()
        for i in range(total):
            scheduled = started + i / rate
            if (delay := scheduled - time.monotonic()) > 0:
                await asyncio.sleep(delay)
            if i == warm:
                meter.start()
            task = asyncio.create_task(one(session, scheduled, i >= warm))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            if i % int(rate) == 0:
                phase = "warm-up" if i < warm else "measuring"
                progress(f"{label} at {rate:,.0f}/s, {phase} {i / rate:.0f} s")
        sent_s = time.monotonic() - started - warmup_s
        await asyncio.gather(*tasks)
        cpu = meter.stop()
    result: dict = {
        "rate": rate,
        "achieved_rate": (total - warm) / max(sent_s, 1e-9),
        "requests": len(latencies),
        "errors": errors,
        "cpu_percent": cpu,
    }
    if latencies:
        result |= {
            "p50_ms": percentile(latencies, 50),
            "p99_ms": percentile(latencies, 99),
            "max_ms": max(latencies),
        }
    return result
