"""Parts 2 and 3: what the same receiver takes without roomhooks in between.

Raw: a plain aiohttp client loop in the bench process signing (shared.signing) and POSTing
the body a delivery carries, `concurrency` requests in flight, no Kafka, no Postgres.
Celery: `tests.bench.celery_baseline` (a Celery worker on RabbitMQ whose task signs, POSTs
with requests and records the status in Postgres), same receiver, same body.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import time
import uuid
from collections.abc import Callable

import aiohttp

from shared.events import parse_event, render_payload
from shared.signing import signature_headers
from tests.bench.load import Target, event_bytes, now_us
from tests.bench.stack import Stack

RAW_CONCURRENCY = 64
RAW_PATHS = 100  # spread over as many paths as there are webhooks


def delivery_body(target: Target) -> bytes:
    """The body roomhooks would POST for one of the bench's events."""
    return render_payload(parse_event(event_bytes(target, sent_us=now_us())))


async def raw_run(
    stack: Stack,
    *,
    body: bytes,
    secret: str,
    warmup_s: float,
    duration_s: float,
    concurrency: int,
    progress: Callable[[str], None],
) -> dict:
    assert stack.receiver is not None
    receiver = stack.receiver
    urls = [receiver.hook_url(f"raw{k}") for k in range(RAW_PATHS)]
    meter = stack.cpu_meter(bench_pid=os.getpid())
    counted = errors = 0
    counting = False
    stop = False

    async def worker(k: int, session: aiohttp.ClientSession) -> None:
        nonlocal counted, errors
        n = k
        while not stop:
            msg_id = str(uuid.uuid4())
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "roomhooks-bench",
                **signature_headers(secret, msg_id=msg_id, timestamp=int(time.time()), body=body),
                "X-Webhook-Event": "participant.joined",
                "X-Webhook-Delivery": msg_id,
                "X-Webhook-Attempt": "1",
            }
            try:
                async with session.post(urls[n % RAW_PATHS], data=body, headers=headers) as r:
                    await r.read()
                    ok = r.status == 200
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            if counting:
                counted += ok
                errors += not ok
            n += concurrency

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        workers = [asyncio.create_task(worker(k, session)) for k in range(concurrency)]
        try:
            await _countdown(warmup_s, progress, "warm-up")
            counting = True
            meter.start()
            t0 = time.monotonic()

            def status(s: float) -> str:
                return f"{s:.0f}/{duration_s:.0f} s, {counted / max(s, 1e-9):,.0f} POSTs/s"

            await _countdown(duration_s, progress, status)
            window = time.monotonic() - t0
            counting = False
            cpu = meter.stop()
        finally:
            stop = True
            await asyncio.gather(*workers, return_exceptions=True)
    return {
        "per_s": counted / window,
        "window_s": window,
        "posts": counted,
        "errors": errors,
        "concurrency": concurrency,
        "body_bytes": len(body),
        "cpu_percent": cpu,
    }


async def celery_run(
    stack: Stack, *, body: bytes, secret: str, warmup_s: float, duration_s: float
) -> dict:
    """`run_celery_baseline(...)`; raises ModuleNotFoundError while it is not there."""
    assert stack.receiver is not None
    module = importlib.import_module("tests.bench.celery_baseline")
    meter = stack.cpu_meter(bench_pid=os.getpid())
    meter.start()
    result = await module.run_celery_baseline(
        receiver_url=stack.receiver.hook_url("celery"),
        body=body,
        secret=secret,
        database_url=stack.database_url,
        duration_s=duration_s,
        warmup_s=warmup_s,
    )
    result = dict(result)
    result["cpu_percent_incl_setup"] = meter.stop()
    return result


async def _countdown(seconds: float, progress: Callable[[str], None], text) -> None:
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < seconds:
        progress(text(elapsed) if callable(text) else f"{text} {elapsed:.0f} s")
        await asyncio.sleep(min(1.0, seconds - elapsed))
