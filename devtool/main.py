"""`roomhooks`: the dev stack, accounts, API keys and test events from the command line, and
command groups that mirror the registry's HTTP API (webhooks, deliveries, workflows, events,
audit, ...).

Connections (DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS, KAFKA_TOPIC_NAMESPACE, ROOMHOOKS_API_URL,
...) come from the environment, else from the run.env that `roomhooks dev` writes; the
environment wins (devtool/cli_support.py, devtool/api_client.py). Exit codes: 0 done, 1 the
platform refused or failed (an API 4xx/5xx, an unreachable registry, Postgres or broker),
2 bad command-line input; each error is one line on stderr. This module only registers the
commands: each group's module holds its parser and handlers.

The client libraries (aiohttp, asyncpg, aiokafka) and structlog are imported by the handlers
that use them, not at the top of any module the parser needs: `--help` and bad input answer
without loading any of them (tests/unit/test_cli_imports.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from devtool.audit_cli import AUDIT_COMMANDS, add_audit_commands
from devtool.cli_support import (
    CliError,
    Parser,
    add_account_option,
    connections,
    default_account,
    postgres_pool,
)
from devtool.deliveries_cli import DELIVERIES_COMMANDS, add_deliveries_commands
from devtool.dev_settings import DevSettings
from devtool.events_cli import EVENTS_COMMANDS, add_events_commands
from devtool.jobs_cli import JOBS_COMMANDS, add_jobs_commands
from devtool.keys import add_keys_commands, create_key, list_keys, revoke_key
from devtool.listen import add_listen_command, listen
from devtool.portal_cli import PORTAL_COMMANDS, add_portal_commands
from devtool.publishing import publish_event, send
from devtool.trigger import add_trigger_command, trigger
from devtool.webhooks_cli import WEBHOOKS_COMMANDS, add_webhooks_commands
from devtool.workflows_cli import WORKFLOWS_COMMANDS, add_workflows_commands
from shared.events import CATALOG, InvalidEvent, Scope, build_event
from shared.room_state import InvalidStateKey, state_key
from shared.settings import RuntimeSettings

# The JSON flags of `publish`, by the event field each fills.
_FLAGS = {"room": "--room", "user": "--user", "users": "--users", "id": "--id", "event": "--event"}

# --- argument types ------------------------------------------------------------------------


def json_value(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"invalid JSON ({exc})") from None


def build_parser() -> Parser:
    parser = Parser(prog="roomhooks", description="roomhooks: webhooks for room events.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    commands.add_parser(
        "dev",
        help="run the whole platform locally in the foreground (make run)",
        description="Start the broker, Postgres and every service; Ctrl-C stops them all.",
    )
    _add_account_commands(commands)
    _add_publish_commands(commands)
    add_trigger_command(commands)
    add_listen_command(commands)
    add_webhooks_commands(commands)
    add_deliveries_commands(commands)
    add_jobs_commands(commands)
    add_portal_commands(commands)
    add_workflows_commands(commands)
    add_events_commands(commands)
    add_audit_commands(commands)
    return parser


def _add_account_commands(commands: Any) -> None:
    """`accounts create`, `keys create|list|revoke`, `secrets-key`."""
    accounts = commands.add_parser("accounts", help="manage accounts")
    accounts_do = accounts.add_subparsers(dest="action", metavar="ACTION", required=True)
    create_account = accounts_do.add_parser("create", help="create an account; prints its id")
    create_account.add_argument("--name", default="default", help="a label for humans")
    add_keys_commands(commands)
    commands.add_parser(
        "secrets-key",
        help="print a new key for ROOMHOOKS_SECRETS_KEY (it seals webhook secrets at rest)",
        description="To rotate, put the new key first: ROOMHOOKS_SECRETS_KEY=NEW,OLD; once the"
        " registry has restarted (it re-seals every secret under NEW), drop OLD.",
    )


def _add_publish_commands(commands: Any) -> None:
    """`publish` (an event) and `state put-kv` / `state put-file` (room data)."""
    publish = commands.add_parser(
        "publish", help="publish an event to the events topic; prints its id"
    )
    add_account_option(publish)
    publish.add_argument("--event", required=True, metavar="NAME", help="a catalog event name")
    publish.add_argument("--room", type=json_value, metavar="JSON", help='e.g. \'{"id": "r1"}\'')
    publish.add_argument("--user", type=json_value, metavar="JSON", help='e.g. \'{"id": "u1"}\'')
    publish.add_argument("--users", type=json_value, metavar="JSON", help="a JSON array of users")
    publish.add_argument("--id", metavar="ID", help="the event id (default: a new UUID)")
    state = commands.add_parser(
        "state", help="feed the workflow bindings' room data by hand (roomhooks.room-state)"
    )
    state_do = state.add_subparsers(dest="action", metavar="ACTION", required=True)
    put_kv = state_do.add_parser("put-kv", help="set (or --delete) a KV entry of a room")
    put_file = state_do.add_parser("put-file", help="set (or --delete) a file's metadata")
    for sub in (put_kv, put_file):
        add_account_option(sub)
        sub.add_argument("--room", required=True, metavar="ROOM_ID")
        sub.add_argument("--delete", action="store_true", help="remove it")
    put_kv.add_argument("--store", required=True)
    put_kv.add_argument("--key", required=True)
    put_kv.add_argument("--value", type=json_value, metavar="JSON", help="the value (JSON)")
    put_file.add_argument("--path", required=True)
    put_file.add_argument(
        "--metadata", type=json_value, metavar="JSON", help="e.g. '{\"size\": 1024}'"
    )


# --- commands ------------------------------------------------------------------------------


async def print_secrets_key(_args: argparse.Namespace) -> int:
    from shared.secrets_box import generate_key

    print(generate_key())
    return 0


def run_dev(_args: argparse.Namespace) -> int:
    # Here, not at the top: the stack and the registry take most of a second to import, which
    # every other command, mostly one HTTP call, would pay.
    from devtool import devstack
    from services.registry import admin as registry_admin
    from shared.logging import configure_logging

    configure_logging(RuntimeSettings(), service="dev")
    api_host, api_port = registry_admin.api_address()
    return devstack.run(DevSettings(), api_host=api_host, api_port=api_port, environ=os.environ)


async def create_account(args: argparse.Namespace) -> int:
    from services.registry import admin as registry_admin  # as in run_dev

    postgres, _kafka = connections(os.environ)
    async with postgres_pool(postgres) as pool:
        new_id = await registry_admin.create_account(pool, args.name)
    print(new_id)
    return 0


def event_from_args(args: argparse.Namespace, account: UUID, *, now: datetime) -> dict[str, Any]:
    """The event `publish` sends for `account`, validated against the catalog; CliError names
    the flag."""
    spec = CATALOG.get(args.event)
    if spec is None:
        raise CliError(f"--event: unknown event {args.event!r} (GET /v1/event-types lists them)")
    if spec.scope is Scope.ROOM and args.room is None:  # the commonest slip: say it plainly
        raise CliError(f"--room is required: {args.event!r} is a room event")
    try:
        return build_event(
            event=args.event,
            organization_id=str(account),
            room=args.room,
            user=args.user,
            users=args.users,
            event_id=args.id,
            now=now,
        )
    except InvalidEvent as exc:
        field = exc.reason.split(":", 1)[0].split(".", 1)[0].split("[", 1)[0]
        flag = _FLAGS.get(field)
        raise CliError(
            f"{flag}: {exc.reason}" if flag else f"invalid event: {exc.reason}"
        ) from None


async def publish(args: argparse.Namespace) -> int:
    account = default_account(args.account, os.environ)
    print(await publish_event(account, event_from_args(args, account, now=datetime.now(UTC))))
    return 0


def state_record(args: argparse.Namespace, account: UUID) -> tuple[str, Any]:
    """The room-state key and value `state put-kv` / `put-file` publish for `account` (None:
    delete)."""
    org = str(account)
    try:
        if args.action == "put-kv":
            key = state_key(org, args.room, "kv", args.store, args.key)
            value, flag = args.value, "--value"
        else:
            key = state_key(org, args.room, "file", args.path)
            value, flag = args.metadata, "--metadata"
            if value is not None and not isinstance(value, dict):
                raise CliError("--metadata: must be a JSON object")
    except InvalidStateKey as exc:
        raise CliError(str(exc)) from None
    if args.delete:
        if value is not None:
            raise CliError(f"--delete and {flag} exclude each other")
        return key, None
    if value is None:
        raise CliError(f"{flag} is required (or --delete)")
    return key, value


async def put_state(args: argparse.Namespace) -> int:
    key, value = state_record(args, default_account(args.account, os.environ))
    from shared.kafka import Topics, dumps  # as in devtool/publishing.py

    _postgres, kafka = connections(os.environ)
    await send(
        kafka, Topics.from_settings(kafka).room_state, key, None if value is None else dumps(value)
    )
    print(key)
    return 0


COMMANDS: dict[tuple[str, str | None], Callable[[argparse.Namespace], Any]] = {
    ("dev", None): run_dev,
    ("listen", None): listen,
    ("state", "put-kv"): put_state,
    ("state", "put-file"): put_state,
    ("accounts", "create"): create_account,
    ("keys", "create"): create_key,
    ("keys", "list"): list_keys,
    ("keys", "revoke"): revoke_key,
    ("publish", None): publish,
    ("trigger", None): trigger,
    ("secrets-key", None): print_secrets_key,
    **WEBHOOKS_COMMANDS,
    **DELIVERIES_COMMANDS,
    **JOBS_COMMANDS,
    **PORTAL_COMMANDS,
    **WORKFLOWS_COMMANDS,
    **EVENTS_COMMANDS,
    **AUDIT_COMMANDS,
}


def _quiet_logging() -> None:
    """Library logs would break the one-line contract: show them only when asked for."""
    from shared.logging import configure_logging

    runtime = RuntimeSettings()
    if "log_level" not in runtime.model_fields_set:
        runtime = runtime.model_copy(update={"log_level": "CRITICAL"})
    configure_logging(runtime, service="cli")


def main(argv: list[str] | None = None) -> None:
    try:
        args = build_parser().parse_args(argv)
        command = COMMANDS[(args.command, getattr(args, "action", None))]
        if command is run_dev:
            code = run_dev(args)
        else:
            _quiet_logging()
            code = asyncio.run(command(args))
    except CliError as exc:
        print(f"roomhooks: error: {exc.message}", file=sys.stderr)
        code = exc.code
    raise SystemExit(code)


if __name__ == "__main__":
    main()
