"""`roomhooks audit list`: the account's audit log, newest first, through the API (OWNER and
ADMIN keys; the API refuses a MEMBER's).

Each entry's changes are summarised in one cell (`field: value`, or the fields' names when
the values do not fit); a value the API does not copy (a secret, a workflow's code) is
`field (hidden)`, and header values come masked as the API keeps them. `--json` has all.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Mapping
from typing import Any

from devtool.api_args import add_action, add_paging, page_query, timestamp
from devtool.api_client import call_account
from devtool.output import CELL_WIDTH, page_note, rows_table, show

COLUMNS = [
    ("TIME", "created_at"),
    ("ACTOR", "actor"),
    ("KEY LABEL", "key_label"),
    ("ACTION", "action"),
    ("TARGET", "target_id"),
    ("CHANGES", "changes"),
]


def add_audit_commands(commands: Any) -> None:
    group = commands.add_parser(
        "audit", help="the account's audit log (through the API; OWNER or ADMIN key)"
    )
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = add_action(actions, "list", "every change to the account, newest first")
    listing.add_argument(
        "--since", type=timestamp, metavar="TIME", help="only changes at or after this instant"
    )
    add_paging(listing)


def changes_summary(changes: Iterable[Mapping[str, Any]]) -> str:
    """`enabled: false; secret (hidden)`: each field with its value as JSON (so no value reads
    as the mark a hidden one gets); when that is wider than a table cell, only the fields'
    names, which then fit more often than values cut short would. `-` for none (pure)."""
    said = [_named(change) + _value(change) for change in changes]
    full = "; ".join(said)
    if len(full) <= CELL_WIDTH:
        return full or "-"
    return ", ".join(_named(change) for change in changes)


def _named(change: Mapping[str, Any]) -> str:
    return f"{change.get('field')}" + (" (hidden)" if change.get("hidden") else "")


def _value(change: Mapping[str, Any]) -> str:
    if change.get("hidden"):
        return ""
    return ": " + json.dumps(change.get("value"), ensure_ascii=False, separators=(",", ":"))


def actor(entry: Mapping[str, Any]) -> str:
    """`key (OWNER)`, `portal (ADMIN)`, `system` (pure)."""
    role = entry.get("role")
    return f"{entry.get('actor')} ({role})" if role else str(entry.get("actor"))


def _entries(data: Mapping[str, Any]) -> str:
    rows = [
        {**entry, "actor": actor(entry), "changes": changes_summary(entry["changes"])}
        for entry in data["entries"]
    ]
    return rows_table(rows, COLUMNS) + page_note(data)


async def list_audit(args: argparse.Namespace) -> int:
    query = page_query(args, since=args.since)
    data = await call_account(args.account, "GET", "audit-log", query=query)
    return show(data, args.json, _entries)


AUDIT_COMMANDS = {("audit", "list"): list_audit}
