"""`roomhooks portal create`: a one-time customer portal link for the account's webhooks (or
some of them), through the API; it prints the link once."""

from __future__ import annotations

import argparse
from typing import Any

from devtool.api_args import add_action, uuid_id
from devtool.api_client import call_account
from devtool.output import record_table, show

# The API's bounds for a link's life (`ttlSeconds`).
MIN_TTL_S, MAX_TTL_S = 60, 86_400


def add_portal_commands(commands: Any) -> None:
    group = commands.add_parser(
        "portal", help="customer portal links (through the API; OWNER or ADMIN key)"
    )
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = add_action(
        actions,
        "create",
        "a one-time link to the portal: the customer manages webhooks there, nothing else",
    )
    create.add_argument(
        "--webhook",
        dest="webhooks",
        action="append",
        type=uuid_id,
        metavar="WEBHOOK_ID",
        help="limit the portal to this webhook (repeat for more; default: all of the account's)",
    )
    create.add_argument(
        "--read-only", action="store_true", help="the customer may look, not change anything"
    )
    create.add_argument(
        "--ttl",
        type=ttl_seconds,
        metavar="SECONDS",
        help=f"how long the link and its session last ({MIN_TTL_S}-{MAX_TTL_S}; default 3600)",
    )


def ttl_seconds(value: str) -> int:
    try:
        seconds = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of seconds") from None
    if not MIN_TTL_S <= seconds <= MAX_TTL_S:
        raise argparse.ArgumentTypeError(f"{seconds} is not between {MIN_TTL_S} and {MAX_TTL_S}")
    return seconds


def portal_body(args: argparse.Namespace) -> dict[str, Any]:
    """The request body: only what was given, so the API's defaults apply (pure)."""
    body: dict[str, Any] = {}
    if args.webhooks:
        body["webhookIds"] = list(dict.fromkeys(args.webhooks))
    if args.read_only:
        body["readOnly"] = True
    if args.ttl is not None:
        body["ttlSeconds"] = args.ttl
    return body


async def create_portal_link(args: argparse.Namespace) -> int:
    data = await call_account(args.account, "POST", "portal-sessions", body=portal_body(args))
    return show(data, args.json, record_table)


PORTAL_COMMANDS = {("portal", "create"): create_portal_link}
