"""`roomhooks listen`: a local endpoint that verifies both signature schemes and prints each
delivery with the time and the status it answered.

A delivery verifies when one live secret (devtool/listen_secrets.py) verifies both schemes;
else it gets 401, as the receiver of the CollabKit webhooks guide answers. A verified one is
answered `--status N` (200), or relayed to `--forward-to URL` and answered with the app's
answer (devtool/listen_forward.py). `check_delivery`, the answers and `render` are pure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from multidict import CIMultiDict

from devtool.cli_support import CliError
from devtool.listen_forward import (
    DEFAULT_TIMEOUT_S,
    Forwarder,
    NotRelayed,
    Relayed,
    check_forward_url,
    points_at,
)
from devtool.listen_secrets import ENV_NAME, Secrets, gather_secrets
from shared.signing import check_secret, verify_hex, verify_standard

if TYPE_CHECKING:
    from aiohttp import web

HEX_HEADERS = ("X-Webhook-Signature", "X-Webhook-Signature-Next")
JSON = (("Content-Type", "application/json"),)
# Statuses whose answer carries no body (RFC 9110 15.3.5, 15.4.5).
BODILESS = frozenset({204, 304})
# The request's bytes as sent: they are what was signed, and what a relay passes on.
RUNNER_OPTIONS: dict[str, Any] = {"access_log": None, "auto_decompress": False}


class SecretSource(Protocol):
    def live(self) -> tuple[str, ...]:
        """The secrets a request is verified with now (may change between requests)."""
        ...


@dataclass(frozen=True)
class Verdict:
    """What `listen` prints of one request's headers, and whether it verifies."""

    event: str
    delivery: str
    attempt: str
    hex_valid: bool
    standard_valid: bool
    verified: bool


def check_delivery(
    secrets: Sequence[str], body: bytes, headers: Mapping[str, str], *, now: int
) -> Verdict:
    """Both schemes, against every secret: verified when one secret verifies both. During a
    rotation's overlap the new secret signs `X-Webhook-Signature-Next`; either header may
    match."""
    by_hex = {
        secret
        for secret in secrets
        if any(verify_hex(secret, body, headers.get(name, "")) for name in HEX_HEADERS)
    }
    by_standard = {secret for secret in secrets if verify_standard(secret, body, headers, now=now)}
    return Verdict(
        event=headers.get("X-Webhook-Event") or "-",
        delivery=headers.get("X-Webhook-Delivery") or "-",
        attempt=headers.get("X-Webhook-Attempt") or "-",
        hex_valid=bool(by_hex),
        standard_valid=bool(by_standard),
        verified=bool(by_hex & by_standard),
    )


@dataclass(frozen=True)
class Answer:
    """What `listen` answers roomhooks, and a line saying why when the status does not."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = JSON
    note: str | None = None


def status_body(status: int, **extra: str) -> bytes:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = ""
    return json.dumps({"status": status, "reason": reason, **extra}).encode()


def status_answer(status: int) -> Answer:
    """`--status N`: N, with a body that says N."""
    return Answer(status, b"" if status in BODILESS else status_body(status))


def refusal(live_secrets: int, *, forwarding: bool) -> Answer:
    note = f"no live secret verifies both signatures ({live_secrets} live)"
    return Answer(
        401,
        status_body(401, error="invalid signature"),
        note=f"{note}; not forwarded" if forwarding else note,
    )


def relay_answer(url: str, outcome: Relayed | NotRelayed) -> Answer:
    """The app's answer as roomhooks gets it; 502/504 with the reason when there is none."""
    if isinstance(outcome, NotRelayed):
        return Answer(
            outcome.status,
            status_body(outcome.status, error=f"{url}: {outcome.reason}"),
            note=f"forward to {url}: {outcome.reason}",
        )
    cut = f"; its answer cut to {len(outcome.body)} bytes" if outcome.truncated else ""
    return Answer(
        outcome.status,
        outcome.body,
        outcome.headers,
        note=f"forwarded to {url}: {outcome.status} in {outcome.elapsed_ms} ms{cut}",
    )


def iso_time(seconds: float) -> str:
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def render(at: str, answer: Answer, verdict: Verdict, body: bytes) -> str:
    """The head line (time, status answered, event, ids, each scheme's verdict), the note,
    the body as indented JSON when it is JSON."""
    try:
        shown = json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        shown = body.decode("utf-8", errors="replace")
    head = (
        f"{at} {answer.status} {verdict.event} delivery={verdict.delivery}"
        f" attempt={verdict.attempt}"
        f" X-Webhook-Signature={_shown(verdict.hex_valid)}"
        f" webhook-signature={_shown(verdict.standard_valid)}"
    )
    note = f"  {answer.note}\n" if answer.note else ""
    return f"{head}\n{note}{shown}\n"


def _shown(valid: bool) -> str:
    return "valid" if valid else "INVALID"


@dataclass(frozen=True)
class ListenConfig:
    status: int = 200
    forward_to: str | None = None
    forward_timeout_s: float = DEFAULT_TIMEOUT_S


def listen_app(
    secrets: SecretSource,
    config: ListenConfig,
    *,
    out: TextIO,
    clock: Callable[[], float] = time.time,
) -> web.Application:
    """Every POST, any path: verified, answered, printed in one write."""
    import aiohttp  # here, as every client library (devtool/main.py)
    from aiohttp import web

    forwarder_key = web.AppKey("forwarder", Forwarder)

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        live = secrets.live()
        verdict = check_delivery(live, body, request.headers, now=int(clock()))
        forwarder = request.app.get(forwarder_key)
        if not verdict.verified:
            answer = refusal(len(live), forwarding=forwarder is not None)
        elif forwarder is None:
            answer = status_answer(config.status)
        else:
            outcome = await forwarder.forward(body, request.headers.items())
            answer = relay_answer(forwarder.url, outcome)
        out.write(render(iso_time(clock()), answer, verdict, body))
        out.flush()
        return web.Response(
            status=answer.status, body=answer.body, headers=CIMultiDict(answer.headers)
        )

    async def forwarding(app: web.Application) -> AsyncIterator[None]:
        assert config.forward_to is not None
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            app[forwarder_key] = Forwarder(
                session, config.forward_to, timeout_s=config.forward_timeout_s
            )
            yield

    app = web.Application(client_max_size=8 * 1024 * 1024)
    app.router.add_post("/{tail:.*}", receive)
    if config.forward_to is not None:
        app.cleanup_ctx.append(forwarding)
    return app


def describe(secrets: Secrets, config: ListenConfig) -> list[str]:
    """What `listen` says before it serves: where its secrets come from, what it answers."""
    lines = [f"verifying with {', '.join(secrets.sources)}"]
    if config.forward_to is None:
        lines.append(f"answering verified deliveries with {config.status}")
    else:
        lines.append(
            f"forwarding verified deliveries to {config.forward_to}"
            f" (timeout {config.forward_timeout_s:g} s) and answering with its answer"
        )
    return lines


async def serve(
    *, host: str, port: int, secrets: Secrets, config: ListenConfig, out: TextIO = sys.stdout
) -> None:
    from aiohttp import web

    runner = web.AppRunner(listen_app(secrets, config, out=out), **RUNNER_OPTIONS)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        for line in describe(secrets, config):
            out.write(f"{line}\n")
        out.write(f"listening on http://{host}:{port}/ (any path); Ctrl-C stops\n")
        out.flush()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


# --- the command ---------------------------------------------------------------------------


def answer_status(value: str) -> int:
    try:
        status = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, not {value!r}") from None
    # A 1xx is an interim answer: the delivery would wait for a final one until its timeout.
    if not 200 <= status <= 599:
        raise argparse.ArgumentTypeError("must be a final HTTP status, from 200 to 599")
    return status


def secret_value(value: str) -> str:
    try:
        return check_secret(value.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def forward_url(value: str) -> str:
    try:
        return check_forward_url(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def timeout_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, not {value!r}") from None
    if not 0 < seconds <= 300:
        raise argparse.ArgumentTypeError("must be more than 0 and at most 300 seconds")
    return seconds


def add_listen_command(commands: Any) -> None:
    listen = commands.add_parser(
        "listen",
        help="run a local webhook endpoint that verifies signatures and prints each delivery",
        description="Verifies each delivery with any live secret: --secret-file, "
        f"{ENV_NAME}, --secret (all together). A bad signature gets 401.",
    )
    listen.add_argument("--port", required=True, type=int, help="port to listen on")
    listen.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    listen.add_argument(
        "--secret-file",
        type=Path,
        metavar="PATH",
        help="webhook secrets, one per line (# comments); read again when it changes",
    )
    listen.add_argument(
        "--secret",
        action="append",
        type=secret_value,
        metavar="S",
        help=f"a webhook secret (repeatable; visible to other users: prefer --secret-file or"
        f" {ENV_NAME})",
    )
    answer = listen.add_mutually_exclusive_group()
    answer.add_argument(
        "--status",
        type=answer_status,
        metavar="N",
        help="status to answer verified deliveries with (200)",
    )
    answer.add_argument(
        "--forward-to",
        type=forward_url,
        metavar="URL",
        help="relay each verified delivery to URL, body and headers intact; answer with its answer",
    )
    listen.add_argument(
        "--forward-timeout",
        type=timeout_seconds,
        metavar="SECONDS",
        help=f"how long the app may take to answer, else 504 ({DEFAULT_TIMEOUT_S:g})",
    )


def config_from(args: argparse.Namespace) -> ListenConfig:
    if not 0 < args.port < 65536:
        raise CliError("--port: must be from 1 to 65535")
    if args.forward_to is None:
        if args.forward_timeout is not None:
            raise CliError("--forward-timeout: only with --forward-to")
        return ListenConfig(status=args.status or 200)
    if points_at(args.forward_to, host=args.host, port=args.port):
        raise CliError("--forward-to: is listen's own address; the relay would loop")
    return ListenConfig(
        forward_to=args.forward_to, forward_timeout_s=args.forward_timeout or DEFAULT_TIMEOUT_S
    )


async def listen(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> int:
    config = config_from(args)
    secrets = gather_secrets(
        cli=args.secret or [],
        env_value=(os.environ if environ is None else environ).get(ENV_NAME),
        file=args.secret_file,
        warn=lambda line: print(line, file=sys.stderr, flush=True),
    )
    try:
        await serve(host=args.host, port=args.port, secrets=secrets, config=config)
    except OSError as exc:
        raise CliError(
            f"--port: cannot listen on {args.host}:{args.port} ({exc.strerror})"
        ) from None
    return 0
