"""`roomhooks events list|get`: the account's event log, through the API."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from devtool.api_args import add_action, add_paging, event_name, page_query, timestamp
from devtool.api_client import call_account
from devtool.output import cell, page_note, record_table, rows_table, show

STATUSES = ("accepted", "rejected")
COLUMNS = [
    ("ID", "id"),
    ("EVENT", "event"),
    ("STATUS", "status"),
    ("ROOM", "room_id"),
    ("WEBHOOKS", "webhooks"),
    ("WORKFLOWS", "workflows"),
    ("RECEIVED", "received_at"),
    ("REASON", "reason"),
]
REACHED_WEBHOOKS = [("WEBHOOK", "webhook_id"), ("DELIVERY", "delivery_id"), ("STATUS", "status")]
REACHED_WORKFLOWS = [
    ("WORKFLOW", "workflow_id"),
    ("EXECUTION", "execution_id"),
    ("STATUS", "status"),
]


def add_events_commands(commands: Any) -> None:
    group = commands.add_parser("events", help="the account's event log (through the API)")
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = add_action(actions, "list", "events read for the account, newest first")
    listing.add_argument("--event", type=event_name, metavar="NAME", help="only this event")
    listing.add_argument("--room", metavar="ROOM_ID", help="only this room's events")
    listing.add_argument("--status", choices=STATUSES)
    listing.add_argument("--since", type=timestamp, metavar="TIME", help="received at or after")
    listing.add_argument("--until", type=timestamp, metavar="TIME", help="received before")
    add_paging(listing)
    one = add_action(actions, "get", "one event: its payload and whom it reached")
    one.add_argument("event_id", metavar="EVENT_ID", help="the id its producer gave it")


def _event(data: Mapping[str, Any]) -> str:
    parts = [record_table(data["event"])]
    if data["webhooks"]:
        parts.append(rows_table(data["webhooks"], REACHED_WEBHOOKS))
    if data["workflows"]:
        parts.append(rows_table(data["workflows"], REACHED_WORKFLOWS))
    if data["payload"] is not None:
        parts.append(f"payload\n{cell(data['payload'])}")
    return "\n\n".join(parts)


async def list_events(args: argparse.Namespace) -> int:
    filters = {
        "event": args.event,
        "roomId": args.room,
        "status": args.status,
        "since": args.since,
        "until": args.until,
    }
    data = await call_account(args.account, "GET", "events", query=page_query(args, **filters))
    return show(data, args.json, lambda d: rows_table(d["events"], COLUMNS) + page_note(d))


async def get_event(args: argparse.Namespace) -> int:
    data = await call_account(args.account, "GET", "events", args.event_id)
    return show(data, args.json, _event)


EVENTS_COMMANDS = {("events", "list"): list_events, ("events", "get"): get_event}
