"""When the dev stack may say it is ready: once every service has answered GET /readyz with 200.

The registry answers on its API; fanout, delivery and the workflow runner on probe servers of
their own (`<prefix>HEALTH_HOST`/`_PORT`, PROBE_SERVERS). The stack gives each its port: the
one the environment sets, else the service's default when free, else a free one. Deciding
comes first (pure); asking, below it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

import aiohttp

from devtool.cli_support import one_line
from devtool.supervisor import DevStackError
from shared.healthcheck import probe_url

DEFAULT_HEALTH_HOST = "127.0.0.1"
POLL_INTERVAL_S = 0.2
# Our own services' /readyz bodies are small: read no more of one than this.
MAX_BODY_BYTES = 16 * 1024
MAX_DETAIL_CHARS = 200


@dataclass(frozen=True)
class ProbeServer:
    """A service's probe server settings: `<prefix>HEALTH_HOST` and `<prefix>HEALTH_PORT`."""

    prefix: str
    default_port: int

    @property
    def host_setting(self) -> str:
        return f"{self.prefix}HEALTH_HOST"

    @property
    def port_setting(self) -> str:
        return f"{self.prefix}HEALTH_PORT"


# As each service's settings define them (docs/configuration.md; a unit test compares them).
PROBE_SERVERS = {
    "fanout": ProbeServer("ROOMHOOKS_FANOUT_", 8081),
    "delivery": ProbeServer("ROOMHOOKS_DELIVERY_", 8082),
    "workflow_runner": ProbeServer("ROOMHOOKS_WORKFLOWS_", 8083),
}


@dataclass(frozen=True)
class ProbeAddress:
    """Where one service's probe server listens; port 0: it has none (not waited for)."""

    service: str
    host: str
    port: int
    setting: str  # the environment variable of the port, given to the service
    moved_from: int | None = None  # the default port, when it was busy


# --- deciding (pure) -----------------------------------------------------------------------


def probe_address(
    service: str,
    environ: Mapping[str, str],
    *,
    is_free: Callable[[str, int], bool],
    pick_free: Callable[[str], int],
) -> ProbeAddress:
    """The port set in the environment (refused when busy: it was asked for), else the
    service's default when free, else whatever `pick_free` finds."""
    server = PROBE_SERVERS.get(service)
    if server is None:
        raise DevStackError(
            f"services/{service} has no probe server the dev stack knows:"
            " add it to PROBE_SERVERS in devtool/readiness.py"
        )
    host = environ.get(server.host_setting) or DEFAULT_HEALTH_HOST
    setting = server.port_setting
    if raw := environ.get(setting, "").strip():
        port = parse_port(raw, setting)
        if port and not is_free(host, port):
            raise DevStackError(
                f"port {port} on {host} is in use ({setting}): stop what holds it or set"
                f" {setting} to a free port"
            )
        return ProbeAddress(service, host, port, setting)
    if is_free(host, server.default_port):
        return ProbeAddress(service, host, server.default_port, setting)
    return ProbeAddress(service, host, pick_free(host), setting, moved_from=server.default_port)


def probe_notes(probes: Sequence[ProbeAddress]) -> list[str]:
    """What the stack says of the probe ports: a default that was busy, a server that is off."""
    notes = []
    for probe in probes:
        if probe.moved_from is not None:
            notes.append(
                f"port {probe.moved_from} is busy; {probe.service}'s probes use {probe.port}"
            )
        elif probe.port == 0:
            notes.append(f"{probe.service} has no probe server ({probe.setting}=0): not waited for")
    return notes


def readyz_urls(api_url: str, probes: Sequence[ProbeAddress]) -> dict[str, str]:
    """Where to ask each service whether it is ready: the registry on its API, the others on
    their probe servers (one whose port is 0 has none, and is not asked)."""
    urls = {"registry": f"{api_url}/readyz"}
    for probe in probes:
        if probe.port:
            base = probe_url(probe.host, probe.port).removesuffix("/healthz")
            urls[probe.service] = f"{base}/readyz"
    return urls


def parse_port(raw: str, setting: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise DevStackError(f"{setting} must be a port number from 0 to 65535, not {raw!r}")
    return port


@dataclass(frozen=True)
class Answer:
    """One GET /readyz: its status (None: no answer) and what was not ok, or why none."""

    status: int | None
    detail: str = ""

    @property
    def ready(self) -> bool:
        return self.status == 200

    def describe(self) -> str:
        said = "no answer" if self.status is None else str(self.status)
        return f"{said}: {self.detail}" if self.detail else said


NOT_ASKED = Answer(None, "not asked yet")


def failing_checks(body: object) -> str:
    """`name=value` of each check of a /readyz body that is not `ok` (the registry's body has
    its checks in the envelope's `data`); empty when none is named."""
    if isinstance(body, dict) and isinstance(body.get("data"), dict):
        body = body["data"]
    checks = body.get("checks") if isinstance(body, dict) else None
    if not isinstance(checks, dict):
        return ""
    failing = ", ".join(f"{name}={value}" for name, value in checks.items() if value != "ok")
    return failing[:MAX_DETAIL_CHARS]


def answer_from(status: int, body: bytes) -> Answer:
    if status == 200:
        return Answer(status)
    try:
        detail = failing_checks(json.loads(body))
    except ValueError:
        detail = ""
    return Answer(status, detail)


def not_ready_message(pending: Mapping[str, Answer], *, timeout_s: float) -> str:
    """One line naming every service not ready in time, with its last answer."""
    named = ", ".join(f"{service} ({answer.describe()})" for service, answer in pending.items())
    return (
        f"not every service answered GET /readyz with 200 within {timeout_s:g} s: {named};"
        " see their lines above (ROOMHOOKS_DEV_READY_TIMEOUT_S waits longer)"
    )


# --- asking --------------------------------------------------------------------------------

Probe = Callable[[str], Awaitable[Answer]]


async def wait_all_ready(
    urls: Mapping[str, str],
    *,
    timeout_s: float,
    probe: Probe,
    interval_s: float = POLL_INTERVAL_S,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Answer]:
    """Ask each service's /readyz until each has answered 200 once. Returns the services that
    had not by `timeout_s`, with their last answer: empty when every one is ready."""
    pending = {service: NOT_ASKED for service in urls}
    deadline = clock() + timeout_s
    while pending:
        answers = await asyncio.gather(*(probe(urls[service]) for service in pending))
        pending = {s: a for s, a in zip(pending, answers, strict=True) if not a.ready}
        if pending and clock() >= deadline:
            break
        if pending:
            await asyncio.sleep(interval_s)
    return pending


class HttpProbe:
    """GET a /readyz URL, once, as an Answer (never raises for the network's sake)."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    async def __call__(self, url: str) -> Answer:
        try:
            async with self._session.get(url, allow_redirects=False) as response:
                body = await response.content.read(MAX_BODY_BYTES)
                return answer_from(response.status, body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Answer(None, one_line(exc)[:MAX_DETAIL_CHARS])


async def wait_until_every_service_ready(urls: Mapping[str, str], *, timeout_s: float) -> None:
    """Return once every service answers ready; DevStackError naming those that did not."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        pending = await wait_all_ready(urls, timeout_s=timeout_s, probe=HttpProbe(session))
    if pending:
        raise DevStackError(not_ready_message(pending, timeout_s=timeout_s))
