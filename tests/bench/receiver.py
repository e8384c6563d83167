"""The benchmark's webhook endpoint, run as its own process: `python -m tests.bench.receiver`.

`POST /hook/<name>` answers 200 at once and counts; `POST /hang/<name>` accepts the request and
never answers (head-of-line tests); `POST /flaky/<name>` answers 500 to a delivery's first
attempt and 200 to the others (retries, `make chaos`), counted as hooks; `POST /aside/<name>`
answers 200 and is counted apart (the scale part's recovery). While tracking is on
(`POST /track/start` .. `/track/stop`) it also keeps, per request to `/hook/` or `/flaky/`, the
receipt time, the `X-Webhook-Delivery` id, the attempt number and the publish time the bench
wrote into the event (`"bench_sent_us":<unix µs>`), so the bench can count deliveries inside a
window and compute publish-to-receipt latency; and it counts requests whose `webhook-id`
differs from their `X-Webhook-Delivery` (a retry or a duplicate must carry the same one).
Both clocks are this machine's `time.time()`.

`ReceiverClient` is the bench's side of it.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

MARKER = b'"bench_sent_us":'


@dataclass
class Tally:
    hooks: int = 0
    hangs: int = 0
    aside: int = 0  # POSTs to /aside/: answered 200, kept out of every other count
    tracking: bool = False
    received_at: list[float] = field(default_factory=list)
    delivery_ids: list[str] = field(default_factory=list)
    sent_us: list[int] = field(default_factory=list)
    attempts: list[int] = field(default_factory=list)
    id_mismatches: int = 0

    def reset(self) -> None:
        self.received_at, self.delivery_ids, self.sent_us, self.attempts = [], [], [], []
        self.id_mismatches = 0


def sent_marker(body: bytes) -> int:
    """The `bench_sent_us` integer in `body`, or -1 when there is none."""
    at = body.find(MARKER)
    if at < 0:
        return -1
    start = at + len(MARKER)
    end = start
    while end < len(body) and 48 <= body[end] <= 57:
        end += 1
    return int(body[start:end]) if end > start else -1


def build_app(tally: Tally) -> web.Application:
    ok = b"ok"

    def count(request: web.Request, body: bytes) -> None:
        now = time.time()
        tally.hooks += 1
        if tally.tracking:
            headers = request.headers
            delivery_id = headers.get("X-Webhook-Delivery", "")
            tally.received_at.append(now)
            tally.delivery_ids.append(delivery_id)
            tally.sent_us.append(sent_marker(body))
            tally.attempts.append(int(headers.get("X-Webhook-Attempt") or 0))
            tally.id_mismatches += headers.get("webhook-id") != delivery_id

    async def hook(request: web.Request) -> web.Response:
        count(request, await request.read())
        return web.Response(body=ok)

    async def flaky(request: web.Request) -> web.Response:
        count(request, await request.read())
        if request.headers.get("X-Webhook-Attempt") == "1":
            return web.Response(status=500, body=b"first attempts fail here")
        return web.Response(body=ok)

    async def aside(request: web.Request) -> web.Response:
        await request.read()
        tally.aside += 1
        return web.Response(body=ok)

    async def hang(request: web.Request) -> web.Response:
        await request.read()
        tally.hangs += 1
        await asyncio.Event().wait()  # never answers; the client's timeout ends it
        return web.Response(status=500)

    async def stats(_request: web.Request) -> web.Response:
        return web.json_response(
            {"hooks": tally.hooks, "hangs": tally.hangs, "aside": tally.aside, "now": time.time()}
        )

    async def track_start(_request: web.Request) -> web.Response:
        tally.reset()
        tally.tracking = True
        return web.json_response({"now": time.time()})

    async def track_stop(_request: web.Request) -> web.Response:
        tally.tracking = False
        answer = {
            "now": time.time(),
            "received_at": tally.received_at,
            "delivery_ids": tally.delivery_ids,
            "sent_us": tally.sent_us,
            "attempts": tally.attempts,
            "id_mismatches": tally.id_mismatches,
        }
        tally.reset()
        return web.json_response(answer)

    app = web.Application()
    app.router.add_post("/hook/{name}", hook)
    app.router.add_post("/hang/{name}", hang)
    app.router.add_post("/aside/{name}", aside)
    app.router.add_post("/flaky/{name}", flaky)
    app.router.add_get("/stats", stats)
    app.router.add_post("/track/start", track_start)
    app.router.add_post("/track/stop", track_stop)
    return app


@dataclass(frozen=True)
class Tracked:
    """What the receiver saw while tracking was on."""

    received_at: list[float]
    delivery_ids: list[str]
    sent_us: list[int]
    attempts: list[int] = field(default_factory=list)
    id_mismatches: int = 0

    def latencies_ms(self, *, sent_from: float, sent_until: float) -> list[float]:
        """Publish-to-receipt of the events published inside [sent_from, sent_until)."""
        lo, hi = sent_from * 1e6, sent_until * 1e6
        return [
            (at * 1e6 - sent) / 1000
            for at, sent in zip(self.received_at, self.sent_us, strict=True)
            if sent >= 0 and lo <= sent < hi
        ]


class ReceiverClient:
    """Talks to a running receiver process (counts, tracking windows)."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession) -> None:
        self.base_url = base_url
        self._session = session

    def hook_url(self, name: str) -> str:
        return f"{self.base_url}/hook/{name}"

    def hang_url(self, name: str) -> str:
        return f"{self.base_url}/hang/{name}"

    def aside_url(self, name: str) -> str:
        """A healthy endpoint whose POSTs no throughput or latency figure counts."""
        return f"{self.base_url}/aside/{name}"

    def flaky_url(self, name: str) -> str:
        return f"{self.base_url}/flaky/{name}"

    async def stats(self) -> dict:
        async with self._session.get(f"{self.base_url}/stats") as response:
            return await response.json()

    async def hooks(self) -> int:
        return int((await self.stats())["hooks"])

    async def track_start(self) -> float:
        async with self._session.post(f"{self.base_url}/track/start") as response:
            return float((await response.json())["now"])

    async def track_stop(self) -> tuple[float, Tracked]:
        async with self._session.post(f"{self.base_url}/track/stop") as response:
            answer = await response.json()
        return float(answer["now"]), Tracked(
            answer["received_at"],
            answer["delivery_ids"],
            answer["sent_us"],
            answer["attempts"],
            answer["id_mismatches"],
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(
        build_app(Tally()),
        host=args.host,
        port=args.port,
        access_log=None,
        print=None,
        backlog=1024,
        shutdown_timeout=0.5,
    )


if __name__ == "__main__":
    main()
