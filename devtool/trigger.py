"""`roomhooks trigger EVENT`: publish a realistic sample of any catalog event, as Stripe's
`trigger` does, with `--set path=value` to change any field of it first.

The path is dotted into the event (`room.name`, `users.1.id`) and must exist in the sample;
the value is JSON when it parses, else the text itself. The result must still be a valid
event of the catalog; either refusal is bad input (exit 2).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from devtool.api_args import event_name
from devtool.cli_support import CliError, add_account_option, default_account
from devtool.publishing import publish_event
from shared.events import CATALOG, InvalidEvent, parse_event, sample_event

# Top-level fields `--set` may not change, and what to use instead.
_FIXED = {"event": "name the event as EVENT", "organization_id": "use --account"}

Assignment = tuple[list[str], Any]


def add_trigger_command(commands: Any) -> None:
    trigger = commands.add_parser(
        "trigger",
        help="publish a realistic sample of a catalog event; prints its id",
        description="Publish a sample event with its room, users and organization filled in.",
        epilog="events: " + ", ".join(CATALOG),
    )
    trigger.add_argument("event", type=event_name, metavar="EVENT", help="a catalog event name")
    add_account_option(trigger)
    trigger.add_argument(
        "--set",
        dest="assignments",
        action="append",
        default=[],
        type=assignment,
        metavar="PATH=VALUE",
        help="change a field of the sample, e.g. room.name='\"Standup\"' or users.0.id=u-9",
    )
    trigger.add_argument("--json", action="store_true", help="print the event published")


def assignment(text: str) -> Assignment:
    """`path=value` -> (path parts, value: JSON when it parses, else the text)."""
    path, sep, raw = text.partition("=")
    parts = path.split(".")
    if not sep or not all(parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not PATH=VALUE (e.g. room.name=Standup)")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return parts, value


def assign(event: dict[str, Any], path: Sequence[str], value: Any) -> None:
    """Set `value` at `path` in `event`, which must already hold something there."""
    shown = ".".join(path)
    if len(path) == 1 and path[0] in _FIXED:
        raise CliError(f"--set {shown}: {_FIXED[path[0]]}")
    node: Any = event
    for depth, part in enumerate(path):
        where = ".".join(path[:depth]) or "the event"
        if isinstance(node, dict):
            if part not in node:
                fields = ", ".join(node) or "none"
                raise CliError(f"--set {shown}: {where} has no field {part!r} (it has: {fields})")
            key: Any = part
        elif isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                items = f"items 0 to {len(node) - 1}" if node else "no items"
                raise CliError(f"--set {shown}: {where} has {items}")
            key = int(part)
        else:
            raise CliError(f"--set {shown}: {where} is {json.dumps(node)}, not an object or list")
        if depth == len(path) - 1:
            node[key] = value
        else:
            node = node[key]


def triggered_event(
    name: str, account: UUID, assignments: Sequence[Assignment], *, now: datetime
) -> dict[str, Any]:
    """The sample of `name` with every assignment applied, checked against the catalog."""
    event = sample_event(name, organization_id=str(account), now=now)
    for path, value in assignments:
        assign(event, path, value)
    try:
        parse_event(event)
    except InvalidEvent as exc:
        hint = ""
        if any(not isinstance(value, str) for _path, value in assignments):
            hint = "; a value that parses as JSON is JSON: quote text, e.g. room.id='\"42\"'"
        raise CliError(f"--set: the catalog refuses the result ({exc.reason}){hint}") from None
    return event


async def trigger(args: argparse.Namespace) -> int:
    account = default_account(args.account, os.environ)
    event = triggered_event(args.event, account, args.assignments, now=datetime.now(UTC))
    event_id = await publish_event(account, event)
    print(json.dumps(event, indent=2, ensure_ascii=False) if args.json else event_id)
    return 0
