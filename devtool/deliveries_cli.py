"""`roomhooks deliveries list|get|redeliver|recover`: a webhook's delivery log, through the API;
`recover --wait` waits for the recovery job to end (devtool.jobs_cli)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from devtool.api_args import add_action, add_paging, page_query, timestamp, uuid_id
from devtool.api_client import call_account
from devtool.jobs_cli import add_wait_options, wait_and_show
from devtool.output import cell, page_note, record_table, rows_table, show

STATUSES = ("pending", "success", "failed")
COLUMNS = [
    ("ID", "id"),
    ("EVENT", "event"),
    ("STATUS", "status"),
    ("CODE", "status_code"),
    ("ATTEMPTS", "attempts"),
    ("NEXT RETRY", "next_retry_at"),
    ("CREATED", "created_at"),
    ("LAST ERROR", "last_error"),
]
ATTEMPT_COLUMNS = [
    ("ATTEMPT", "attempt"),
    ("STARTED", "started_at"),
    ("MS", "duration_ms"),
    ("CODE", "status_code"),
    ("ERROR", "error"),
    ("ANSWER", "response_body"),
]


def add_deliveries_commands(commands: Any) -> None:
    group = commands.add_parser("deliveries", help="a webhook's deliveries (through the API)")
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = add_action(actions, "list", "the webhook's deliveries, newest first")
    listing.add_argument("webhook", type=uuid_id, metavar="WEBHOOK_ID")
    listing.add_argument("--status", choices=STATUSES)
    listing.add_argument("--since", type=timestamp, metavar="TIME", help="created at or after")
    listing.add_argument("--until", type=timestamp, metavar="TIME", help="created before")
    add_paging(listing)
    for name, text in [
        ("get", "one delivery with every attempt"),
        ("redeliver", "a new attempt now, even after failed"),
    ]:
        one = add_action(actions, name, text)
        one.add_argument("webhook", type=uuid_id, metavar="WEBHOOK_ID")
        one.add_argument("delivery", type=uuid_id, metavar="DELIVERY_ID")
    recover = add_action(actions, "recover", "send the failed deliveries of a window again")
    recover.add_argument("webhook", type=uuid_id, metavar="WEBHOOK_ID")
    recover.add_argument("--since", required=True, type=timestamp, metavar="TIME")
    recover.add_argument("--until", type=timestamp, metavar="TIME", help="default: now")
    add_wait_options(recover)


def _delivery(data: Mapping[str, Any]) -> str:
    delivery = data["delivery"]
    return "\n\n".join(
        [
            record_table(delivery, leave_out=("payload",)),
            rows_table(data["attempts"], ATTEMPT_COLUMNS),
            f"payload\n{cell(delivery['payload'])}",
        ]
    )


async def list_deliveries(args: argparse.Namespace) -> int:
    query = page_query(args, status=args.status, since=args.since, until=args.until)
    data = await call_account(
        args.account, "GET", "webhooks", args.webhook, "deliveries", query=query
    )
    return show(data, args.json, lambda d: rows_table(d["deliveries"], COLUMNS) + page_note(d))


async def get_delivery(args: argparse.Namespace) -> int:
    path = ("webhooks", args.webhook, "deliveries", args.delivery)
    return show(await call_account(args.account, "GET", *path), args.json, _delivery)


async def redeliver(args: argparse.Namespace) -> int:
    path = ("webhooks", args.webhook, "deliveries", args.delivery, "redeliver")
    data = await call_account(args.account, "POST", *path)
    return show(data, args.json, lambda d: f"delivery {d['delivery_id']} queued")


async def recover(args: argparse.Namespace) -> int:
    body = {"since": args.since, "until": args.until}
    data = await call_account(args.account, "POST", "webhooks", args.webhook, "recover", body=body)
    if args.wait:
        return await wait_and_show(args, data["job"])
    return show(data, args.json, lambda d: record_table(d["job"]))


DELIVERIES_COMMANDS = {
    ("deliveries", "list"): list_deliveries,
    ("deliveries", "get"): get_delivery,
    ("deliveries", "redeliver"): redeliver,
    ("deliveries", "recover"): recover,
}
