"""The arguments every API command shares (`--account`, `--json`, paging) and the argument
types that refuse bad input before any request (exit 2)."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from devtool.cli_support import account_id
from devtool.runenv import ACCOUNT_SETTING
from shared.events import CATALOG

# The API's page size bounds (`limit`).
MAX_LIMIT = 100


def add_action(actions: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    """A subcommand of an API group, with `--account` and `--json`."""
    parser = actions.add_parser(name, help=help_text, description=help_text)
    parser.add_argument(
        "--account",
        type=account_id,
        metavar="ID",
        help=f"the account (default: {ACCOUNT_SETTING}, else the API key's own)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the API's answer (`data`) as JSON"
    )
    return parser


def add_paging(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=page_size, metavar="N", help="page size (1-100)")
    parser.add_argument("--cursor", metavar="CURSOR", help="the page after the last one shown")


def uuid_id(value: str) -> str:
    """An id the API keys by UUID: one that is not would only be a 404 later."""
    return str(account_id(value))


def page_size(value: str) -> int:
    try:
        size = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not 1 <= size <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"{size} is not between 1 and {MAX_LIMIT}")
    return size


def event_name(value: str) -> str:
    if value not in CATALOG:
        raise argparse.ArgumentTypeError(
            f"unknown event {value!r} (`roomhooks trigger -h` lists the catalog)"
        )
    return value


def event_names(value: str) -> list[str]:
    """`a,b,c`: catalog event names, each once, in the order given."""
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("at least one event name is required")
    return list(dict.fromkeys(event_name(name) for name in names))


def timestamp(value: str) -> str:
    """An RFC 3339 instant with its offset, passed on as given."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an RFC 3339 time (e.g. 2026-05-29T10:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{value!r} has no UTC offset (add Z or +00:00)")
    return value


def page_query(args: argparse.Namespace, **filters: Any) -> dict[str, Any]:
    return {"limit": args.limit, "cursor": args.cursor, **filters}
