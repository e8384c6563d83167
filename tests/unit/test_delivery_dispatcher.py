"""The dispatcher refuses literal IPs the SSRF guard refuses, before any connection."""

from __future__ import annotations

from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from services.delivery.dispatcher import Dispatcher
from services.delivery.policy import Outcome
from services.delivery.ssrf import AddressPolicy

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def dispatcher(session: aiohttp.ClientSession, *, allow_loopback: bool) -> Dispatcher:
    policy = AddressPolicy.build(allow_loopback=allow_loopback, allowed_networks=[])
    return Dispatcher(session, policy=policy, timeout_s=2, body_max_bytes=64, clock=lambda: NOW)


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.5/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://127.0.0.1:9/hook",
        # Spellings aiohttp does not read as an IP: the all-digit ones it rejects as invalid
        # (a retried network error), the others it resolves. The guard names the address.
        "http://2130706433:9/hook",
        "http://0x7f.1:9/hook",
        "http://0:9/hook",
    ],
)
async def test_a_refused_literal_ip_is_blocked_with_its_reason_every_time(url):
    async with aiohttp.ClientSession() as session:
        send = dispatcher(session, allow_loopback=False)
        for _ in range(2):  # the decision is cached per host: the second answer is the same
            result = await send.post(url, b"{}", {})
            assert result.outcome is Outcome.BLOCKED
            assert "refused by the SSRF guard" in (result.error or "")
            assert result.status_code is None


async def test_an_allowed_literal_ip_is_posted_to():
    received = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            send = dispatcher(session, allow_loopback=True)
            result = await send.post(f"http://127.0.0.1:{server.port}/hook", b"{}", {})
    finally:
        await server.close()
    assert result.outcome is Outcome.SUCCESS and result.status_code == 200
    assert received == [b"{}"]
