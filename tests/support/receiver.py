"""A real HTTP endpoint for delivery tests: records every request, answers as scripted."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass, field

from aiohttp import web


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic()


@dataclass
class Script:
    """Statuses to answer in turn (the last one repeats); `hang` never answers."""

    statuses: list[int] = field(default_factory=lambda: [200])
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False
    body: bytes = b"ok"
    delay_s: float = 0.0


class Receiver:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.received: dict[str, list[Received]] = defaultdict(list)
        self.scripts: dict[str, Script] = {}
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    def script(self, path: str, script: Script) -> str:
        self.scripts[path] = script
        return self.base_url + path

    def url(self, path: str) -> str:
        return self.base_url + path

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        path = request.path
        self.received[path].append(Received(path, dict(request.headers), body, time.monotonic()))
        script = self.scripts.get(path, Script())
        if script.hang:
            await asyncio.Event().wait()
        if script.delay_s:
            await asyncio.sleep(script.delay_s)
        n = len(self.received[path]) - 1
        status = script.statuses[min(n, len(script.statuses) - 1)]
        return web.Response(status=status, body=script.body, headers=script.headers)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, 0).start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://{self.host}:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
