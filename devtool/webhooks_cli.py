"""`roomhooks webhooks list|get|create|update|delete|test|rotate-secret|stats`, through the
API.

A secret is printed only where the API answers it, once (create, rotate-secret), with a
warning on stderr that it is not shown again. `stats` prints the window's figures, then only
the buckets that saw something (`--json` has every one); `workflows stats` shares the window.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any

from devtool.api_args import add_action, add_paging, event_names, page_query, uuid_id
from devtool.api_client import call_account
from devtool.cli_support import CliError
from devtool.output import Columns, cell, page_note, record_table, rows_table, show

COLUMNS = [
    ("ID", "id"),
    ("NAME", "name"),
    ("URL", "url"),
    ("EVENTS", "events"),
    ("ROOM", "room_id"),
    ("ENABLED", "enabled"),
]
BUCKET_COLUMNS = [
    ("START", "start"),
    ("ATTEMPTS", "attempts"),
    ("SUCCESSES", "successes"),
    ("FAILURES", "failures"),
    ("P95 MS", "latency_p95_ms"),
]
# The API's stats windows: the last hour (minute buckets), day or week (hour buckets).
WINDOWS = ("1h", "24h", "7d")
# A webhook's delivery order: as soon as each can go, or one at a time per room.
ORDERINGS = ("none", "room")
SHOWN_ONCE = "roomhooks: the secret is shown only now: keep it to verify signatures"


def add_webhooks_commands(commands: Any) -> None:
    group = commands.add_parser("webhooks", help="manage webhooks (through the API)")
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    add_paging(add_action(actions, "list", "the account's webhooks, newest first"))
    for name, text in [
        ("get", "one webhook (never its secret)"),
        ("delete", "delete a webhook; prints its last state"),
        ("test", "send a webhook.test ping through the delivery path"),
    ]:
        add_action(actions, name, text).add_argument("webhook", type=uuid_id, metavar="WEBHOOK_ID")
    create = add_action(actions, "create", "register a webhook; prints its secret once")
    create.add_argument("--url", required=True, help="where deliveries are POSTed")
    create.add_argument("--events", required=True, type=event_names, metavar="A,B")
    create.add_argument("--disabled", action="store_true", help="create it paused")
    update = add_action(actions, "update", "change the fields given (PATCH)")
    update.add_argument("webhook", type=uuid_id, metavar="WEBHOOK_ID")
    update.add_argument("--url")
    update.add_argument("--events", type=event_names, metavar="A,B")
    update.add_argument("--no-room", action="store_true", help="remove the room scope")
    switch = update.add_mutually_exclusive_group()
    switch.add_argument("--enable", dest="enabled", action="store_const", const=True)
    switch.add_argument("--disable", dest="enabled", action="store_const", const=False)
    for sub in (create, update):
        sub.add_argument("--room", metavar="ROOM_ID", help="only this room's events")
        sub.add_argument("--name", help="a label for humans")
        sub.add_argument("--header", action="append", type=header, metavar="'NAME: VALUE'")
        sub.add_argument("--retry-schedule", type=schedule, metavar="S,S,...", help="seconds")
        sub.add_argument(
            "--ordering",
            choices=ORDERINGS,
            help="room: one delivery at a time per room, in publish order (default: none)",
        )
        sub.add_argument(
            "--send-traceparent",
            action=argparse.BooleanOptionalAction,
            help="a W3C traceparent header on each attempt, while the platform traces"
            " (default: not sent)",
        )
    stats = add_action(actions, "stats", "the endpoint's health over a window, and its buckets")
    stats.add_argument("webhook", type=uuid_id, metavar="WEBHOOK_ID")
    add_window_option(stats)
    rotate = add_action(actions, "rotate-secret", "a new secret, printed once")
    rotate.add_argument("webhook", type=uuid_id, metavar="WEBHOOK_ID")
    rotate.add_argument(
        "--overlap", type=int, metavar="SECONDS", help="how long the old secret still signs"
    )


def add_window_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--window", choices=WINDOWS, help="the last hour, day or week (default: the API's, 24h)"
    )


def buckets_table(buckets: list[Mapping[str, Any]], columns: Columns, count: str) -> str:
    """The buckets whose `count` field is not 0 under a line saying how many of all those are;
    an idle window's zeros say nothing a person reads (pure)."""
    busy = [bucket for bucket in buckets if bucket.get(count)]
    title = f"buckets: {len(busy)} of {len(buckets)} with {count} (oldest first)"
    return f"{title}\n{rows_table(busy, columns)}" if busy else title


def percent(rate: Any) -> str:
    """A 0-1 rate as `87.5%`; `-` for none (pure)."""
    return "-" if rate is None else f"{rate * 100:.1f}%"


def counts(values: Mapping[str, Any]) -> str:
    """`{p50: 12, p95: 80}` as `p50 12, p95 80` (pure)."""
    return ", ".join(f"{cell(name)} {cell(value)}" for name, value in values.items())


def _stats(data: Mapping[str, Any]) -> str:
    stats = data["stats"]
    summary = {
        "window": stats["window"],
        "since": stats["since"],
        "attempts": stats["attempts"],
        "successes": stats["successes"],
        "failures": stats["failures"],
        "success_rate": percent(stats["success_rate"]),
        "latency_ms": counts(stats["latency_ms"]),
        "deliveries": counts(stats["deliveries"]),
        "failure_streak": stats["failure_streak"],
        "last_success_at": stats["last_success_at"],
        "last_failure_at": stats["last_failure_at"],
        "last_error": stats["last_error"],
    }
    table = buckets_table(stats["buckets"], BUCKET_COLUMNS, "attempts")
    return f"{record_table(summary)}\n\n{table}"


def header(value: str) -> tuple[str, str]:
    name, sep, text = value.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"{value!r} is not 'Name: value'")
    return name.strip(), text.strip()


def schedule(value: str) -> list[int]:
    try:
        return [int(part) for part in value.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not seconds like 1,5,30") from None


def webhook_body(args: argparse.Namespace) -> dict[str, Any]:
    """The fields given on the command line, as the API names them."""
    body: dict[str, Any] = {
        "url": args.url,
        "events": args.events,
        "roomId": args.room,
        "name": args.name,
        "headers": dict(args.header) if args.header else None,
        "retrySchedule": args.retry_schedule,
        "ordering": args.ordering,
        "sendTraceparent": args.send_traceparent,
    }
    body = {k: v for k, v in body.items() if v is not None}
    if getattr(args, "no_room", False):
        if args.room is not None:
            raise CliError("--room and --no-room exclude each other")
        body["roomId"] = None
    return body


def _webhook(data: Mapping[str, Any]) -> str:
    return record_table(data["webhook"], leave_out=("secret",))


def _show_with_secret(data: Mapping[str, Any], as_json: bool) -> int:
    """The answer that carries the secret, once; the warning on stderr keeps stdout parsable."""
    code = show(data, as_json, lambda d: record_table(d["webhook"]))
    print(SHOWN_ONCE, file=sys.stderr)
    return code


async def list_webhooks(args: argparse.Namespace) -> int:
    data = await call_account(args.account, "GET", "webhooks", query=page_query(args))
    return show(data, args.json, lambda d: rows_table(d["webhooks"], COLUMNS) + page_note(d))


async def get_webhook(args: argparse.Namespace) -> int:
    return show(
        await call_account(args.account, "GET", "webhooks", args.webhook), args.json, _webhook
    )


async def delete_webhook(args: argparse.Namespace) -> int:
    data = await call_account(args.account, "DELETE", "webhooks", args.webhook)
    return show(data, args.json, lambda d: f"deleted\n{_webhook(d)}")


async def create_webhook(args: argparse.Namespace) -> int:
    body = webhook_body(args)
    if args.disabled:
        body["enabled"] = False
    data = await call_account(args.account, "POST", "webhooks", body=body)
    return _show_with_secret(data, args.json)


async def update_webhook(args: argparse.Namespace) -> int:
    body = webhook_body(args)
    if args.enabled is not None:
        body["enabled"] = args.enabled
    if not body:
        raise CliError("nothing to change: give at least one field (-h lists them)")
    data = await call_account(args.account, "PATCH", "webhooks", args.webhook, body=body)
    return show(data, args.json, _webhook)


async def ping_webhook(args: argparse.Namespace) -> int:
    data = await call_account(args.account, "POST", "webhooks", args.webhook, "test")
    return show(data, args.json, lambda d: f"delivery {d['delivery_id']} queued")


async def rotate_secret(args: argparse.Namespace) -> int:
    body = {} if args.overlap is None else {"overlapSeconds": args.overlap}
    data = await call_account(
        args.account, "POST", "webhooks", args.webhook, "rotate-secret", body=body
    )
    return _show_with_secret(data, args.json)


async def webhook_stats(args: argparse.Namespace) -> int:
    query = {"window": args.window}
    data = await call_account(args.account, "GET", "webhooks", args.webhook, "stats", query=query)
    return show(data, args.json, _stats)


WEBHOOKS_COMMANDS = {
    ("webhooks", "list"): list_webhooks,
    ("webhooks", "get"): get_webhook,
    ("webhooks", "create"): create_webhook,
    ("webhooks", "update"): update_webhook,
    ("webhooks", "delete"): delete_webhook,
    ("webhooks", "test"): ping_webhook,
    ("webhooks", "rotate-secret"): rotate_secret,
    ("webhooks", "stats"): webhook_stats,
}
