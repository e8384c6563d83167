"""`roomhooks listen` on a `roomhooks dev` stack, as the walk-through tests read it: the
deliveries it printed, a listener started with one secret, and fanout's index size."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.support.devstack import CliProcess, clean_environ, start_cli
from tests.support.polling import eventually

DELIVERY_TIMEOUT_S = 30.0
# What `listen` prints before each body: when, the status it answered, what it got.
HEAD = re.compile(
    r"(?P<at>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (?P<status>\d{3}) (?P<event>\S+)"
    r" delivery=(?P<delivery>\S+) attempt=(?P<attempt>\S+)"
    r" X-Webhook-Signature=(?P<hex>\S+) webhook-signature=(?P<standard>\S+)"
)


@dataclass(frozen=True)
class Printed:
    """One delivery as `listen` printed it: the head line's fields and the body."""

    head: dict[str, str]
    text: str

    @property
    def body(self) -> dict[str, Any]:
        return json.loads(self.text)

    @property
    def verified(self) -> bool:
        """Answered 200 with both signatures valid."""
        return (self.head["status"], self.head["hex"], self.head["standard"]) == (
            "200",
            "valid",
            "valid",
        )


def printed_deliveries(lines: list[str]) -> list[Printed]:
    """`listen`'s output as deliveries: a head line, then indented JSON up to its `}`. Other
    lines (another command's output in the same terminal) are passed over."""
    found = []
    i = 0
    while i < len(lines):
        head = HEAD.fullmatch(lines[i])
        if head is None:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j] == "}"), None)
        if end is None:  # the body is still arriving
            break
        found.append(Printed(head.groupdict(), "\n".join(lines[i + 1 : end + 1])))
        i = end + 1
    return found


async def printed_once(
    lines: list[str], wanted: Callable[[Printed], bool], *, what: str, alive: Callable[[], None]
) -> Printed:
    """The first delivery printed in `lines` that is `wanted`, waiting for it; `alive` raises
    when the printing process is gone."""

    async def printed() -> Printed | None:
        alive()
        return next((p for p in printed_deliveries(lines) if wanted(p)), None)

    try:
        return await eventually(printed, timeout_s=DELIVERY_TIMEOUT_S, interval_s=0.1)
    except AssertionError as exc:
        shown = "\n".join(lines[-60:])
        raise AssertionError(f"listen printed no {what}: {exc}\n{shown}") from None


async def delivered(listen: CliProcess, event: str) -> Printed:
    """The first delivery of `event` that `listen` printed, waiting for it."""

    def alive() -> None:
        assert listen.process.returncode is None, listen.output()

    return await printed_once(
        listen.stdout, lambda p: p.head["event"] == event, what=event, alive=alive
    )


@contextlib.asynccontextmanager
async def listening(port: int, secret: str, folder: Path) -> AsyncIterator[CliProcess]:
    """`roomhooks listen --port P --secret-file F` with the secret in F, up; stopped afterwards."""
    secrets = folder / "webhook-secrets"
    secrets.write_text(f"{secret}\n")
    secrets.chmod(0o600)
    listen = await start_cli(
        "listen", "--port", str(port), "--secret-file", str(secrets), env=clean_environ()
    )
    try:
        await listen.wait_for_line(lambda line: "listening on" in line, timeout_s=15)
        yield listen
    finally:
        await listen.stop()


async def indexed_webhooks(http: aiohttp.ClientSession, health_port: int) -> float:
    """Enabled webhooks in fanout's index (its /metrics); 0 while it does not answer."""
    try:
        async with http.get(f"http://127.0.0.1:{health_port}/metrics") as response:
            text = await response.text()
    except (aiohttp.ClientError, TimeoutError):
        return 0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name == "roomhooks_fanout_index_webhooks"
                and sample.labels.get("state") == "enabled"
            ):
                return sample.value
    return 0
