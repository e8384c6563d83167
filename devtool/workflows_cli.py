"""`roomhooks workflows list|get|create|update|delete|executions|versions|stats`, through the
API.

The code comes from `--code-file` (`-` reads stdin); its language is `--language`, else `ts`
for a `.ts`/`.mts` file, else the API's default (`js`). The registry checks the code when saved.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from devtool.api_args import add_action, add_paging, event_names, page_query, uuid_id
from devtool.api_client import call_account
from devtool.cli_support import CliError
from devtool.output import cell, page_note, record_table, rows_table, show
from devtool.webhooks_cli import add_window_option, buckets_table, counts

LANGUAGES = ("js", "ts")
EXECUTION_STATUSES = ("running", "success", "error", "timeout")
COLUMNS = [
    ("ID", "id"),
    ("NAME", "name"),
    ("EVENTS", "events"),
    ("ROOM", "room_id"),
    ("ENABLED", "enabled"),
    ("LANGUAGE", "language"),
    ("VERSION", "version"),
]
EXECUTION_COLUMNS = [
    ("ID", "id"),
    ("EVENT", "event"),
    ("STATUS", "status"),
    ("VERSION", "version"),
    ("MS", "duration_ms"),
    ("STARTED", "started_at"),
    ("ERROR", "error"),
]

VERSION_COLUMNS = [
    ("VERSION", "version"),
    ("LANGUAGE", "language"),
    ("CURRENT", "current"),
    ("SAVED", "created_at"),
    ("SAVED BY", "saved_by"),
]
BUCKET_COLUMNS = [
    ("START", "start"),
    ("EXECUTIONS", "executions"),
    ("RUNNING", "running"),
    ("SUCCESS", "success"),
    ("ERROR", "error"),
    ("TIMEOUT", "timeout"),
    ("P95 MS", "duration_p95_ms"),
]
# The API's bound for a version number (nine digits: an int4 in Postgres).
VERSION_MAX = 999_999_999


def add_workflows_commands(commands: Any) -> None:
    group = commands.add_parser("workflows", help="manage workflows (through the API)")
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    add_paging(add_action(actions, "list", "the account's workflows, newest first"))
    for name, text in [
        ("get", "one workflow with its code"),
        ("delete", "delete a workflow; prints its last state"),
    ]:
        add_action(actions, name, text).add_argument(
            "workflow", type=uuid_id, metavar="WORKFLOW_ID"
        )
    create = add_action(actions, "create", "save a workflow (its code is checked first)")
    create.add_argument("--name", required=True)
    create.add_argument("--events", required=True, type=event_names, metavar="A,B")
    create.add_argument("--code-file", required=True, type=Path, metavar="PATH")
    create.add_argument("--disabled", action="store_true", help="create it paused")
    update = add_action(actions, "update", "change the fields given; new code is a new version")
    update.add_argument("workflow", type=uuid_id, metavar="WORKFLOW_ID")
    update.add_argument("--name")
    update.add_argument("--events", type=event_names, metavar="A,B")
    update.add_argument("--code-file", type=Path, metavar="PATH")
    update.add_argument("--no-room", action="store_true", help="remove the room scope")
    switch = update.add_mutually_exclusive_group()
    switch.add_argument("--enable", dest="enabled", action="store_const", const=True)
    switch.add_argument("--disable", dest="enabled", action="store_const", const=False)
    for sub in (create, update):
        sub.add_argument("--room", metavar="ROOM_ID", help="only this room's events")
        sub.add_argument("--language", choices=LANGUAGES, help="default: from the file's suffix")
    runs = add_action(actions, "executions", "the workflow's executions, or one of them")
    runs.add_argument("workflow", type=uuid_id, metavar="WORKFLOW_ID")
    runs.add_argument("execution", nargs="?", type=uuid_id, metavar="EXECUTION_ID")
    runs.add_argument("--status", choices=EXECUTION_STATUSES)
    add_paging(runs)
    versions = add_action(actions, "versions", "the workflow's versions, or one with its code")
    versions.add_argument("workflow", type=uuid_id, metavar="WORKFLOW_ID")
    versions.add_argument("version", nargs="?", type=version_number, metavar="VERSION")
    add_paging(versions)
    stats = add_action(actions, "stats", "the workflow's executions per status over a window")
    stats.add_argument("workflow", type=uuid_id, metavar="WORKFLOW_ID")
    add_window_option(stats)


def version_number(value: str) -> int:
    """A version as the API numbers them: a whole number from 1."""
    # The length first: int() of thousands of digits is slow, then refused.
    if not (value.isascii() and value.isdigit() and len(value) <= 9) or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number from 1 to {VERSION_MAX}")
    return int(value)


def read_code(path: Path) -> str:
    """The code file's text (`-`: stdin); an unreadable file is bad input (exit 2)."""
    try:
        if str(path) == "-":
            return sys.stdin.read()
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"--code-file: {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise CliError(f"--code-file: {path}: not UTF-8 text") from None


def workflow_body(args: argparse.Namespace) -> dict[str, Any]:
    """The fields given on the command line, as the API names them."""
    body: dict[str, Any] = {"name": args.name, "events": args.events, "roomId": args.room}
    body = {k: v for k, v in body.items() if v is not None}
    if getattr(args, "no_room", False):
        if args.room is not None:
            raise CliError("--room and --no-room exclude each other")
        body["roomId"] = None
    if args.code_file is not None:
        body["code"] = read_code(args.code_file)
        if args.language is None and args.code_file.suffix in (".ts", ".mts"):
            body["language"] = "ts"
    if args.language is not None:
        body["language"] = args.language
    return body


def _workflow(data: Mapping[str, Any]) -> str:
    workflow = data["workflow"]
    return f"{record_table(workflow, leave_out=('code',))}\n\ncode\n{workflow['code']}"


def _execution(data: Mapping[str, Any]) -> str:
    execution = data["execution"]
    logs = [
        f"{cell(entry.get('level'))}: {cell(entry.get('message'))}" for entry in execution["logs"]
    ]
    return "\n".join([record_table(execution, leave_out=("logs",)), "", "logs", *logs])


def saved_by(who: Mapping[str, Any] | None) -> str:
    """`key <label or id> (<role>)`, `system`, or `-` once the audit entry is gone (pure)."""
    if who is None:
        return "-"
    if who["actor"] != "key":
        return cell(who["actor"])
    name = who.get("key_label") or who.get("key_id")
    return f"key {cell(name)} ({cell(who.get('role'))})"


def _version_rows(data: Mapping[str, Any]) -> str:
    rows = [{**v, "saved_by": saved_by(v["saved_by"])} for v in data["versions"]]
    return rows_table(rows, VERSION_COLUMNS) + page_note(data)


def _version(data: Mapping[str, Any]) -> str:
    version = {**data["version"], "saved_by": saved_by(data["version"]["saved_by"])}
    return f"{record_table(version, leave_out=('code',))}\n\ncode\n{version['code']}"


def _stats(data: Mapping[str, Any]) -> str:
    stats = data["stats"]
    summary = {
        "window": stats["window"],
        "since": stats["since"],
        "executions": stats["executions"],
        "statuses": counts(stats["statuses"]),
        "duration_p95_ms": stats["duration_p95_ms"],
    }
    buckets = [{**b, **b["statuses"]} for b in stats["buckets"]]
    return f"{record_table(summary)}\n\n{buckets_table(buckets, BUCKET_COLUMNS, 'executions')}"


async def list_workflows(args: argparse.Namespace) -> int:
    data = await call_account(args.account, "GET", "workflows", query=page_query(args))
    return show(data, args.json, lambda d: rows_table(d["workflows"], COLUMNS) + page_note(d))


async def get_workflow(args: argparse.Namespace) -> int:
    data = await call_account(args.account, "GET", "workflows", args.workflow)
    return show(data, args.json, _workflow)


async def delete_workflow(args: argparse.Namespace) -> int:
    data = await call_account(args.account, "DELETE", "workflows", args.workflow)
    return show(data, args.json, lambda d: f"deleted\n{_workflow(d)}")


async def create_workflow(args: argparse.Namespace) -> int:
    body = workflow_body(args)
    if args.disabled:
        body["enabled"] = False
    data = await call_account(args.account, "POST", "workflows", body=body)
    return show(data, args.json, _workflow)


async def update_workflow(args: argparse.Namespace) -> int:
    body = workflow_body(args)
    if args.enabled is not None:
        body["enabled"] = args.enabled
    if not body:
        raise CliError("nothing to change: give at least one field (-h lists them)")
    data = await call_account(args.account, "PATCH", "workflows", args.workflow, body=body)
    return show(data, args.json, _workflow)


async def executions(args: argparse.Namespace) -> int:
    path = ("workflows", args.workflow, "executions")
    if args.execution is not None:
        if args.status or args.limit or args.cursor:
            raise CliError("--status, --limit and --cursor page the list, not one EXECUTION_ID")
        data = await call_account(args.account, "GET", *path, args.execution)
        return show(data, args.json, _execution)
    query = page_query(args, status=args.status)
    data = await call_account(args.account, "GET", *path, query=query)
    return show(
        data, args.json, lambda d: rows_table(d["executions"], EXECUTION_COLUMNS) + page_note(d)
    )


async def versions(args: argparse.Namespace) -> int:
    path = ("workflows", args.workflow, "versions")
    if args.version is not None:
        if args.limit or args.cursor:
            raise CliError("--limit and --cursor page the list, not one VERSION")
        data = await call_account(args.account, "GET", *path, str(args.version))
        return show(data, args.json, _version)
    data = await call_account(args.account, "GET", *path, query=page_query(args))
    return show(data, args.json, _version_rows)


async def workflow_stats(args: argparse.Namespace) -> int:
    query = {"window": args.window}
    data = await call_account(args.account, "GET", "workflows", args.workflow, "stats", query=query)
    return show(data, args.json, _stats)


WORKFLOWS_COMMANDS = {
    ("workflows", "list"): list_workflows,
    ("workflows", "get"): get_workflow,
    ("workflows", "create"): create_workflow,
    ("workflows", "update"): update_workflow,
    ("workflows", "delete"): delete_workflow,
    ("workflows", "executions"): executions,
    ("workflows", "versions"): versions,
    ("workflows", "stats"): workflow_stats,
}
