"""`roomhooks listen --forward-to URL`: a verified delivery reaches a real local app with the
body byte-identical and its headers intact, and roomhooks gets the app's answer; an app that
is down or slow gets 502 or 504 with the reason; an unverified delivery goes nowhere."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from devtool.listen import RUNNER_OPTIONS, ListenConfig, listen_app, relay_answer
from devtool.listen_forward import (
    ANSWER_MAX_BYTES,
    NotRelayed,
    Relayed,
    check_forward_url,
    forwarded_headers,
    points_at,
)
from services.delivery.dispatcher import Dispatcher, build_headers
from services.delivery.policy import AttemptResult
from shared.signing import PreviousSecret, new_secret, verify_hex, verify_standard
from shared.ssrf import AddressPolicy
from tests.support.services import free_port

SECRET = new_secret()
# Bytes a re-encoding relay would change: escapes, non-ASCII, odd spacing, no final newline.
BODY = (
    '{"id":"e1", "event":"participant.joined","data":{"name":"Zoë \\u00e9\\n","n":1.50}}'.encode()
)


@dataclass
class App:
    """A local app: records each request as received and answers what it is told to."""

    status: int = 201
    answer: bytes = b'{"received":true}'
    hang: asyncio.Event | None = None
    received: list[tuple[bytes, list[tuple[str, str]]]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((await request.read(), list(request.headers.items())))
        if self.hang is not None:
            await self.hang.wait()
        return web.Response(
            status=self.status,
            body=self.answer,
            headers={"Content-Type": "application/json", "Retry-After": "7", "X-App": "1"},
        )


@contextlib.asynccontextmanager
async def running(app: web.Application) -> AsyncIterator[TestServer]:
    server = TestServer(app, **RUNNER_OPTIONS)
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


def app_server(app: App) -> web.Application:
    served = web.Application()
    served.router.add_post("/hooks/roomhooks", app.handle)
    return served


async def deliver(
    listen_url: str, body: bytes = BODY, secret: str = SECRET, **extra: object
) -> tuple[AttemptResult, dict[str, str]]:
    """One attempt as the delivery service makes it: its headers, its dispatcher."""
    sent = build_headers(
        secret=secret,
        body=body,
        delivery_id="0b6c5f1e-delivery",
        event="participant.joined",
        attempt=1,
        timestamp=int(time.time()),
        user_agent="roomhooks/1.0",
        custom=[("X-Team", "design")],
        **extra,  # type: ignore[arg-type]
    )
    policy = AddressPolicy.build(allow_loopback=True, allowed_networks=[])
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        dispatcher = Dispatcher(
            session,
            policy=policy,
            timeout_s=10,
            body_max_bytes=4096,
            clock=lambda: datetime.now(UTC),
        )
        return await dispatcher.post(listen_url, body, sent), sent


@contextlib.asynccontextmanager
async def listen_forwarding_to(
    url: str, *, timeout_s: float = 8.0, secrets: tuple[str, ...] = (SECRET,)
):
    class Fixed:
        def live(self) -> tuple[str, ...]:
            return secrets

    out = io.StringIO()
    config = ListenConfig(forward_to=url, forward_timeout_s=timeout_s)
    async with running(listen_app(Fixed(), config, out=out)) as server:
        yield str(server.make_url("/collab-webhook")), out


async def test_a_verified_delivery_reaches_the_app_byte_identical_with_its_headers_intact():
    app = App()
    async with running(app_server(app)) as target:
        url = str(target.make_url("/hooks/roomhooks"))
        async with listen_forwarding_to(url) as (listen_url, out):
            result, sent = await deliver(listen_url)

    [(body, received)] = app.received
    assert body == BODY
    got = dict(received)
    for name, value in sent.items():
        assert got[name] == value, name
    assert verify_hex(SECRET, body, got["X-Webhook-Signature"])
    assert verify_standard(SECRET, body, got, now=int(time.time()))
    assert got["Host"] == urlsplit(url).netloc
    assert got["Content-Length"] == str(len(BODY))
    assert (result.status_code, result.response_body) == (201, '{"received":true}')
    head, note = out.getvalue().splitlines()[:2]
    assert " 201 participant.joined delivery=0b6c5f1e-delivery attempt=1" in head
    assert note.startswith(f"  forwarded to {url}: 201 in ")


async def test_during_a_rotation_both_signatures_reach_the_app():
    old = new_secret()
    app = App()
    async with running(app_server(app)) as target:
        url = str(target.make_url("/hooks/roomhooks"))
        async with listen_forwarding_to(url, secrets=(old,)) as (listen_url, _out):
            result, sent = await deliver(
                listen_url, previous=PreviousSecret(old, int(time.time()) + 60)
            )
    [(_body, received)] = app.received
    got = dict(received)
    assert result.status_code == 201
    assert got["X-Webhook-Signature-Next"] == sent["X-Webhook-Signature-Next"]
    assert len(got["webhook-signature"].split(" ")) == 2


async def test_the_apps_error_status_and_retry_after_reach_roomhooks():
    app = App(status=503, answer=b'{"error":"warming up"}')
    async with running(app_server(app)) as target:
        async with listen_forwarding_to(str(target.make_url("/hooks/roomhooks"))) as (
            listen_url,
            out,
        ):
            result, _sent = await deliver(listen_url)
    assert (result.status_code, result.response_body) == (503, '{"error":"warming up"}')
    assert result.retry_after_s == 7
    assert " 503 participant.joined " in out.getvalue()


async def test_an_unverified_delivery_is_answered_401_and_not_forwarded():
    app = App()
    async with running(app_server(app)) as target:
        async with listen_forwarding_to(str(target.make_url("/hooks/roomhooks"))) as (
            listen_url,
            out,
        ):
            result, _sent = await deliver(listen_url, secret=new_secret())
    assert result.status_code == 401 and app.received == []
    assert "no live secret verifies both signatures (1 live); not forwarded" in out.getvalue()


async def test_an_app_that_is_down_gets_roomhooks_a_502_with_the_reason():
    url = f"http://127.0.0.1:{free_port()}/hooks/roomhooks"
    async with listen_forwarding_to(url) as (listen_url, out):
        result, _sent = await deliver(listen_url)
    assert result.status_code == 502
    error = json.loads(result.response_body or "")["error"]
    assert error == f"{url}: unreachable (Connection refused)"
    assert f"  forward to {url}: unreachable (Connection refused)" in out.getvalue()


async def test_an_app_that_does_not_answer_in_time_gets_roomhooks_a_504():
    app = App(hang=asyncio.Event())
    async with running(app_server(app)) as target:
        url = str(target.make_url("/hooks/roomhooks"))
        async with listen_forwarding_to(url, timeout_s=0.3) as (listen_url, out):
            result, _sent = await deliver(listen_url)
        app.hang.set()
    assert result.status_code == 504 and len(app.received) == 1
    assert json.loads(result.response_body or "")["error"] == f"{url}: no answer within 0.3 s"
    assert " 504 participant.joined " in out.getvalue()


async def test_a_long_answer_is_cut_and_the_cut_is_printed():
    app = App(answer=b"x" * (ANSWER_MAX_BYTES + 10))
    async with running(app_server(app)) as target:
        async with listen_forwarding_to(str(target.make_url("/hooks/roomhooks"))) as (
            listen_url,
            out,
        ):
            result, _sent = await deliver(listen_url)
    assert result.status_code == 201
    assert f"its answer cut to {ANSWER_MAX_BYTES} bytes" in out.getvalue()


# --- the pure parts ---------------------------------------------------------------------------


def test_hop_by_hop_headers_and_those_connection_names_are_dropped_repeats_kept():
    kept = forwarded_headers(
        [
            ("Host", "127.0.0.1:9000"),
            ("Content-Length", "12"),
            ("Connection", "keep-alive, X-Hop"),
            ("X-Hop", "1"),
            ("Transfer-Encoding", "chunked"),
            ("Keep-Alive", "timeout=5"),
            ("X-Webhook-Signature", "abc"),
            ("webhook-signature", "v1,a v1,b"),
            ("X-Custom", "1"),
            ("X-Custom", "2"),
            ("Content-Encoding", "gzip"),
        ]
    )
    assert list(kept.items()) == [
        ("X-Webhook-Signature", "abc"),
        ("webhook-signature", "v1,a v1,b"),
        ("X-Custom", "1"),
        ("X-Custom", "2"),
        ("Content-Encoding", "gzip"),
    ]


@pytest.mark.parametrize(
    ("outcome", "status", "note"),
    [
        (Relayed(418, b"teapot", (), False, 3), 418, "forwarded to U: 418 in 3 ms"),
        (
            Relayed(200, b"x" * 4, (), True, 3),
            200,
            "forwarded to U: 200 in 3 ms; its answer cut to 4 bytes",
        ),
        (
            NotRelayed(502, "unreachable (Connection refused)"),
            502,
            "forward to U: unreachable (Connection refused)",
        ),
        (NotRelayed(504, "no answer within 8 s"), 504, "forward to U: no answer within 8 s"),
    ],
)
def test_roomhooks_gets_the_apps_status_or_the_gateways(outcome, status, note):
    answer = relay_answer("U", outcome)
    assert (answer.status, answer.note) == (status, note)


def test_a_missing_answer_is_a_json_body_naming_the_url_and_reason():
    answer = relay_answer("http://x/", NotRelayed(504, "no answer within 8 s"))
    assert json.loads(answer.body) == {
        "status": 504,
        "reason": "Gateway Timeout",
        "error": "http://x/: no answer within 8 s",
    }


@pytest.mark.parametrize("url", ["http://127.0.0.1:3000/webhooks", "https://app.test/hook?x=1"])
def test_an_http_or_https_url_with_a_host_is_a_forward_target(url):
    assert check_forward_url(url) == url


@pytest.mark.parametrize(
    ("url", "own"),
    [
        ("http://127.0.0.1:9000/", True),
        ("http://localhost:9000/x", True),
        ("http://[::1]:9000/", True),
        ("http://127.0.0.1:9001/", False),
        ("http://app.test:9000/", False),
        ("http://127.0.0.1/", False),
    ],
)
def test_a_forward_target_on_listens_own_address_is_recognised(url, own):
    assert points_at(url, host="127.0.0.1", port=9000) is own
