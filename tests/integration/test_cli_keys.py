"""`roomhooks keys list|revoke` as a user runs them, against real Postgres: keys listed without
their secret, revoked for good, the last OWNER key kept, the account taken from run.env."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import pytest

from services.registry.accounts.repository import PostgresAccounts
from services.registry.accounts.service import AccountService
from services.registry.keys import hash_token
from services.registry.policy import Role
from tests.integration.test_cli import clean_environ, run_cli

pytestmark = pytest.mark.integration


@pytest.fixture
def accounts(pool: asyncpg.Pool) -> AccountService:
    return AccountService(PostgresAccounts(pool))


async def test_keys_list_shows_every_key_of_the_account_and_no_secret(
    cli_env: dict[str, str], tmp_path: Path, accounts: AccountService
) -> None:
    account = await accounts.create_account("cli-keys")
    owner = await accounts.mint_key(account, Role.OWNER, label="laptop")
    member = await accounts.mint_key(account, Role.MEMBER)
    other = await accounts.mint_key(await accounts.create_account("other"), Role.OWNER)

    result = await run_cli(["keys", "list", "--account", str(account)], env=cli_env, cwd=tmp_path)

    assert (result.code, result.stderr) == (0, "")
    header, *lines = result.stdout.splitlines()
    assert header.split()[:3] == ["ID", "ROLE", "PREFIX"]
    assert [line.split()[:3] for line in lines] == [
        [str(member.key.id), "MEMBER", member.token[:8]],
        [str(owner.key.id), "OWNER", owner.token[:8]],
    ]
    assert lines[1].endswith("laptop")
    for secret in (owner.token, member.token, hash_token(owner.token), str(other.key.id)):
        assert secret not in result.stdout


async def test_keys_revoke_refuses_the_key_at_once_and_keeps_the_last_owner(
    cli_env: dict[str, str], tmp_path: Path, accounts: AccountService
) -> None:
    account = await accounts.create_account("cli-keys")
    first = await accounts.mint_key(account, Role.OWNER)
    second = await accounts.mint_key(account, Role.OWNER)

    def revoke(key_id: object) -> list[str]:
        return ["keys", "revoke", str(key_id), "--account", str(account)]

    result = await run_cli(revoke(first.key.id), env=cli_env, cwd=tmp_path)
    assert (result.code, result.stderr) == (0, "")
    assert result.stdout.startswith(f"{first.key.id} revoked at ")
    assert await accounts.authenticate(first.token) is None

    result = await run_cli(revoke(second.key.id), env=cli_env, cwd=tmp_path)
    assert result.code == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"roomhooks: error: KEY_ID: {second.key.id} is the account's last live OWNER key:"
        " create another first"
    ]
    assert await accounts.authenticate(second.token) is not None

    missing = uuid.uuid4()
    result = await run_cli(revoke(missing), env=cli_env, cwd=tmp_path)
    assert result.code == 2
    assert result.stderr.splitlines() == [
        f"roomhooks: error: KEY_ID: account {account} has no key {missing}"
    ]


async def test_keys_commands_take_the_account_from_run_env(
    database_url: str, tmp_path: Path, accounts: AccountService
) -> None:
    account = await accounts.create_account("dev")
    owner = await accounts.mint_key(account, Role.OWNER)
    (tmp_path / ".roomhooks").mkdir()
    run_env = tmp_path / ".roomhooks" / "run.env"
    run_env.write_text(
        f"export DATABASE_URL='{database_url}'\nexport ROOMHOOKS_ACCOUNT_ID='{account}'\n"
    )

    listed = await run_cli(["keys", "list"], env=clean_environ(), cwd=tmp_path)
    created = await run_cli(
        ["keys", "create", "--role", "MEMBER"], env=clean_environ(), cwd=tmp_path
    )

    assert (listed.code, listed.stderr) == (0, "")
    assert str(owner.key.id) in listed.stdout
    assert (created.code, created.stderr) == (0, "")
    made = await accounts.authenticate(created.stdout.strip())
    assert made is not None and made.account_id == account

    run_env.write_text(f"export DATABASE_URL='{database_url}'\n")
    result = await run_cli(["keys", "list"], env=clean_environ(), cwd=tmp_path)
    assert result.code == 2
    assert result.stderr.startswith("roomhooks: error: --account is required")
