"""`roomhooks keys create|list|revoke`: an account's API keys, through the registry's admin
module. The account is `--account`, else ROOMHOOKS_ACCOUNT_ID from the environment or run.env
(what `roomhooks dev` saved)."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from types import ModuleType
from typing import TYPE_CHECKING, Any
from uuid import UUID

from devtool.cli_support import (
    CliError,
    account_id,
    add_account_option,
    connections,
    default_account,
    postgres_pool,
)

if TYPE_CHECKING:
    import asyncpg

    from services.registry.admin import ApiKey

# The registry's roles (services.registry.admin.ROLES, which a unit test holds this to): the
# parser needs them, and importing the registry for them would slow every command.
ROLES = ("OWNER", "ADMIN", "MEMBER")


def _admin() -> ModuleType:
    """The registry's admin module, imported by the commands that call it."""
    from services.registry import admin

    return admin


def add_keys_commands(commands: Any) -> None:
    """`keys create|list|revoke`, each with `--account`."""
    keys = commands.add_parser("keys", help="manage API keys")
    keys_do = keys.add_subparsers(dest="action", metavar="ACTION", required=True)
    create_key = keys_do.add_parser(
        "create", help="mint an API key; prints it once (only its hash is stored)"
    )
    create_key.add_argument("--role", required=True, type=str.upper, choices=ROLES)
    list_keys = keys_do.add_parser(
        "list", help="list the account's keys, newest first (never the keys themselves)"
    )
    revoke_key = keys_do.add_parser(
        "revoke", help="revoke a key: it is refused from now on (the last OWNER key stays)"
    )
    revoke_key.add_argument("key", type=account_id, metavar="KEY_ID", help="the key's id")
    for sub in (create_key, list_keys, revoke_key):
        add_account_option(sub)


@contextlib.asynccontextmanager
async def account_pool(given: UUID | None) -> AsyncIterator[tuple[asyncpg.Pool, UUID]]:
    """A pool on the registry's database and the keys commands' account (it must exist)."""
    account = default_account(given, os.environ)
    postgres, _kafka = connections(os.environ)
    registry_admin = _admin()
    async with postgres_pool(postgres) as pool:
        try:
            yield pool, account
        except registry_admin.NoSuchAccount:
            raise CliError(f"--account: no account {account}") from None


async def create_key(args: argparse.Namespace) -> int:
    async with account_pool(args.account) as (pool, account):
        token = await _admin().create_key(pool, account, args.role)
    print(token)
    return 0


async def list_keys(args: argparse.Namespace) -> int:
    async with account_pool(args.account) as (pool, account):
        print(keys_table(await _admin().list_keys(pool, account)))
    return 0


async def revoke_key(args: argparse.Namespace) -> int:
    registry_admin = _admin()
    async with account_pool(args.account) as (pool, account):
        try:
            key = await registry_admin.revoke_key(pool, account, args.key)
        except registry_admin.NoSuchKey:
            raise CliError(f"KEY_ID: account {account} has no key {args.key}") from None
        except registry_admin.LastOwnerKey:
            raise CliError(
                f"KEY_ID: {args.key} is the account's last live OWNER key: create another first"
            ) from None
    print(f"{key.id} revoked at {utc_text(key.revoked_at)}")
    return 0


def utc_text(moment: datetime | None) -> str:
    """`2026-05-01T12:00:00Z`; `-` for none."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else "-"


def keys_table(keys: Sequence[ApiKey]) -> str:
    """A header, then one line per key (never the key itself: only its first characters)."""
    rows = [("ID", "ROLE", "PREFIX", "CREATED", "LAST USED", "EXPIRES", "REVOKED", "LABEL")]
    rows += [
        (
            str(k.id),
            k.role,
            k.prefix,
            utc_text(k.created_at),
            utc_text(k.last_used_at),
            utc_text(k.expires_at),
            utc_text(k.revoked_at),
            k.label or "-",
        )
        for k in keys
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
