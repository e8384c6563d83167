"""The dispatcher refuses literal IPs the SSRF guard refuses, before any connection; whatever
bytes an endpoint sends back become a storable result."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import given, settings
from hypothesis import strategies as st

from services.delivery.dispatcher import Dispatcher, build_headers, endpoint_session
from services.delivery.policy import AttemptResult, Outcome
from shared.failures import unstorable_at
from shared.signing import PreviousSecret, hex_signature, new_secret
from shared.ssrf import AddressPolicy

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


async def test_a_cookie_an_endpoint_sets_never_goes_out_with_a_later_delivery():
    # Two webhooks (of two accounts, say) on one host: a load balancer's cookie set in the
    # answer to one must not reach the other, nor the same one again.
    cookies = []

    async def hook(request: web.Request) -> web.Response:
        cookies.append(request.headers.get("Cookie"))
        answer = web.Response(text="ok")
        answer.set_cookie("lb", "account-a-session")
        return answer

    app = web.Application()
    app.router.add_post("/{hook}", hook)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with endpoint_session(aiohttp.TCPConnector()) as session:
            send = dispatcher(session, allow_loopback=True)
            for path in ("a", "b", "a"):  # by name: a client keeps no cookies of a bare IP
                result = await send.post(f"http://localhost:{server.port}/{path}", b"{}", {})
                assert result.outcome is Outcome.SUCCESS
    finally:
        await server.close()
    assert cookies == [None, None, None]


class RawServer:
    """Answers every connection with `answer` (raw bytes), then closes it."""

    def __init__(self) -> None:
        self.answer = b""
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            head = await reader.readuntil(b"\r\n\r\n")
            length = [line for line in head.split(b"\r\n") if line.lower().startswith(b"content-")]
            for line in length:
                if line.lower().startswith(b"content-length:"):
                    await reader.readexactly(int(line.split(b":")[1]))
            writer.write(self.answer)
            await writer.drain()
        writer.close()


header_names = st.sampled_from(
    [b"Retry-After", b"Location", b"Content-Encoding", b"Content-Type", b"X-Junk"]
)
header_values = st.one_of(
    st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
    st.sampled_from([b"\xc2\xb2", b"http://[::1", b"gzip", b"120", b"\x00", b"\xff\xfe"]),
)


@st.composite
def answers(draw) -> bytes:
    status = draw(
        st.one_of(
            st.sampled_from([200, 302, 410, 429, 500, 503]),
            st.integers(200, 999),
            st.sampled_from([0, 99, 1000, 12345]),
        )
    )
    reason = draw(st.sampled_from([b"OK", b"", b"\xff\x00 odd", b"Gone"]))
    body = draw(st.binary(max_size=200))
    lines = [b"HTTP/1.1 %d %s" % (status, reason)]
    pairs = draw(st.lists(st.tuples(header_names, header_values), max_size=4))
    lines += [name + b": " + value for name, value in pairs]
    framing = draw(st.sampled_from(["exact", "short", "long", "none"]))
    if framing != "none":
        length = len(body) + {"exact": 0, "short": -1, "long": 10}[framing]
        lines.append(b"Content-Length: %d" % max(0, length))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def test_any_bytes_an_endpoint_sends_become_a_storable_result_and_nothing_raises():
    loop = asyncio.new_event_loop()
    server = RawServer()

    async def open_session() -> aiohttp.ClientSession:
        await server.start()
        return aiohttp.ClientSession(auto_decompress=False)

    session = loop.run_until_complete(open_session())
    policy = AddressPolicy.build(allow_loopback=True, allowed_networks=[])
    send = Dispatcher(session, policy=policy, timeout_s=1, body_max_bytes=64, clock=lambda: NOW)
    url = f"http://127.0.0.1:{server.port}/hook"

    @settings(max_examples=150, deadline=None)
    @given(answer=answers())
    def check(answer: bytes) -> None:
        server.answer = answer
        result = loop.run_until_complete(send.post(url, b"{}", {}))
        assert isinstance(result, AttemptResult)
        for text in (result.error, result.response_body):
            if text is not None:
                text.encode("utf-8")  # raises on a lone surrogate
                assert unstorable_at(text) is None
        assert len(result.response_body or "") <= 64

    try:
        check()
    finally:
        loop.run_until_complete(session.close())
        loop.run_until_complete(server.close())
        loop.close()


# --- the headers of an attempt --------------------------------------------------------------


OLD_SECRET, NEW_SECRET = new_secret(), new_secret()


def attempt_headers(timestamp: int, **fields) -> dict[str, str]:
    return build_headers(
        secret=NEW_SECRET,
        body=b"{}",
        delivery_id="d1",
        event="participant.joined",
        attempt=1,
        timestamp=timestamp,
        user_agent="roomhooks/test",
        **fields,
    )


def test_the_webhooks_own_headers_go_with_ours_which_they_cannot_replace():
    custom = (("Authorization", "Bearer t0k3n"), ("X-Tenant", "acme"), ("User-Agent", "evil"))
    headers = attempt_headers(1_000, custom=custom)
    assert headers["Authorization"] == "Bearer t0k3n" and headers["X-Tenant"] == "acme"
    assert headers["User-Agent"] == "roomhooks/test"


def test_the_previous_secret_signs_until_its_overlap_ends_at_the_attempts_own_time():
    previous = PreviousSecret(OLD_SECRET, until=1_000)
    during = attempt_headers(999, previous=previous)
    after = attempt_headers(1_000, previous=previous)
    assert during["X-Webhook-Signature"] == hex_signature(OLD_SECRET, b"{}")
    assert during["X-Webhook-Signature-Next"] == hex_signature(NEW_SECRET, b"{}")
    assert len(during["webhook-signature"].split(" ")) == 2
    assert after["X-Webhook-Signature"] == hex_signature(NEW_SECRET, b"{}")
    assert "X-Webhook-Signature-Next" not in after
    assert len(after["webhook-signature"].split(" ")) == 1
