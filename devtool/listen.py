"""`roomhooks listen`: a local endpoint that verifies both signature schemes and prints deliveries.

A delivery whose signatures do not verify gets 401, as the receiver of the CollabKit webhooks guide
answers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from aiohttp import web

from devtool.cli_support import CliError
from shared.signing import verify_hex, verify_standard


def check_delivery(secret: str, body: bytes, headers: dict[str, str], *, now: int) -> dict:
    """Both schemes, verified: what `listen` prints for one request. During a rotation's
    overlap the new secret signs `X-Webhook-Signature-Next`; either header may match."""
    hex_ok = any(
        verify_hex(secret, body, headers.get(name, ""))
        for name in ("X-Webhook-Signature", "X-Webhook-Signature-Next")
    )
    standard_ok = verify_standard(secret, body, headers, now=now)
    return {
        "event": headers.get("X-Webhook-Event"),
        "delivery": headers.get("X-Webhook-Delivery"),
        "attempt": headers.get("X-Webhook-Attempt"),
        "x_webhook_signature": "valid" if hex_ok else "INVALID",
        "standard_webhooks_signature": "valid" if standard_ok else "INVALID",
        "verified": hex_ok and standard_ok,
    }


def render(report: dict, body: bytes) -> str:
    try:
        shown = json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        shown = body.decode("utf-8", errors="replace")
    head = (
        f"{report['event']} delivery={report['delivery']} attempt={report['attempt']}"
        f" X-Webhook-Signature={report['x_webhook_signature']}"
        f" webhook-signature={report['standard_webhooks_signature']}"
    )
    return f"{head}\n{shown}\n"


def listen_app(
    secret: str, *, out: TextIO, status: int, clock: Callable[[], float] = time.time
) -> web.Application:
    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        report = check_delivery(secret, body, dict(request.headers), now=int(clock()))
        out.write(render(report, body))
        out.flush()
        if not report["verified"]:
            return web.Response(status=401, text="Invalid signature")
        return web.Response(status=status, text="OK")

    app = web.Application(client_max_size=8 * 1024 * 1024)
    app.router.add_post("/{tail:.*}", receive)
    return app


async def serve(
    *, host: str, port: int, secret: str, status: int = 200, out: TextIO = sys.stdout
) -> None:
    runner = web.AppRunner(listen_app(secret, out=out, status=status), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    out.write(f"listening on http://{host}:{port}/ (any path); Ctrl-C stops\n")
    out.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def add_listen_command(commands: Any) -> None:
    listen = commands.add_parser(
        "listen",
        help="run a local webhook endpoint that verifies signatures and prints each delivery",
    )
    listen.add_argument("--port", required=True, type=int, help="port to listen on")
    listen.add_argument("--secret", required=True, help="the webhook's secret (from its 201)")
    listen.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    listen.add_argument(
        "--status", type=int, default=200, help="status to answer verified deliveries with"
    )


async def listen(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        raise CliError("--port: must be from 1 to 65535")
    try:
        await serve(host=args.host, port=args.port, secret=args.secret, status=args.status)
    except OSError as exc:
        raise CliError(
            f"--port: cannot listen on {args.host}:{args.port} ({exc.strerror})"
        ) from None
    return 0
