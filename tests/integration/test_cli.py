"""`roomhooks accounts|keys|publish` as a user runs them, against real Postgres and Kafka."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from services.registry.accounts.repository import PostgresAccounts
from services.registry.accounts.service import AccountService
from services.registry.policy import Role
from shared.events import parse_event
from shared.kafka import Topics
from shared.settings import KafkaSettings
from tests.support.kafka import read_topic
from tests.support.services import free_port

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "devtool.main"]


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str


def clean_environ() -> dict[str, str]:
    """The test process's env without anything that would pick other connections."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("ROOMHOOKS_", "KAFKA_")) and name != "DATABASE_URL"
    }


async def run_cli(args: list[str], *, env: dict[str, str], cwd: Path) -> Result:
    process = await asyncio.create_subprocess_exec(
        *CLI,
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return Result(process.returncode, stdout.decode(), stderr.decode())


@pytest.fixture
async def account(pool: asyncpg.Pool) -> uuid.UUID:
    return await AccountService(PostgresAccounts(pool)).create_account("cli-test")


async def test_accounts_create_prints_the_id_of_a_stored_account(
    cli_env: dict[str, str], tmp_path: Path, pool: asyncpg.Pool
) -> None:
    result = await run_cli(["accounts", "create", "--name", "acme"], env=cli_env, cwd=tmp_path)

    assert (result.code, result.stderr) == (0, "")
    account_id = uuid.UUID(result.stdout.strip())
    name = await pool.fetchval("SELECT name FROM registry.accounts WHERE id = $1", account_id)
    assert name == "acme"


@pytest.mark.parametrize("role", list(Role))
async def test_keys_create_prints_a_working_key_whose_text_is_stored_nowhere(
    cli_env: dict[str, str], tmp_path: Path, pool: asyncpg.Pool, account: uuid.UUID, role: Role
) -> None:
    result = await run_cli(
        ["keys", "create", "--account", str(account), "--role", role.value.lower()],
        env=cli_env,
        cwd=tmp_path,
    )

    assert (result.code, result.stderr) == (0, "")
    token = result.stdout.strip()
    owner = await AccountService(PostgresAccounts(pool)).authenticate(token)
    assert owner is not None
    assert (owner.account_id, owner.role) == (account, role.value)
    assert not await rows_containing(pool, token)


async def rows_containing(pool: asyncpg.Pool, text: str) -> list[str]:
    """`schema.table` of every row, in every user table, whose text form contains `text`."""
    tables = await pool.fetch(
        "SELECT table_schema, table_name FROM information_schema.tables"
        " WHERE table_type = 'BASE TABLE'"
        " AND table_schema NOT IN ('pg_catalog', 'information_schema')"
    )
    assert tables, "no tables to search"
    found = []
    for table in tables:
        qualified = f'"{table["table_schema"]}"."{table["table_name"]}"'
        hits = await pool.fetchval(
            f"SELECT count(*) FROM {qualified} AS t WHERE strpos(t::text, $1) > 0", text
        )
        if hits:
            found.append(qualified)
    return found


async def test_publish_puts_exactly_that_event_on_the_events_topic_keyed_by_room(
    cli_env: dict[str, str], tmp_path: Path, kafka_settings: KafkaSettings, account: uuid.UUID
) -> None:
    result = await run_cli(
        [
            "publish",
            "--account",
            str(account),
            "--event",
            "participant.joined",
            "--room",
            '{"id": "room-1", "name": "Design review"}',
            "--user",
            '{"id": "user-7", "name": "Ada"}',
            "--id",
            "evt-cli-1",
        ],
        env=cli_env,
        cwd=tmp_path,
    )

    assert (result.code, result.stderr, result.stdout.strip()) == (0, "", "evt-cli-1")
    records = await read_topic(
        kafka_settings, Topics.from_settings(kafka_settings).events, at_least=1
    )
    assert len(records) == 1
    record = records[0]
    assert record.key == b"room-1"
    assert record.headers == {"content-type": b"application/json"}
    event = parse_event(record.value or b"")
    assert (event.id, event.event, event.organization_id) == (
        "evt-cli-1",
        "participant.joined",
        str(account),
    )
    assert (event.room_id, event.user_id) == ("room-1", "user-7")


async def test_publish_keys_an_organization_event_by_the_organization(
    cli_env: dict[str, str], tmp_path: Path, kafka_settings: KafkaSettings, account: uuid.UUID
) -> None:
    result = await run_cli(
        ["publish", "--account", str(account), "--event", "member.added"],
        env=cli_env,
        cwd=tmp_path,
    )

    assert (result.code, result.stderr) == (0, "")
    records = await read_topic(
        kafka_settings, Topics.from_settings(kafka_settings).events, at_least=1
    )
    assert [r.key for r in records] == [str(account).encode()]
    assert parse_event(records[0].value or b"").id == result.stdout.strip()


async def test_publish_without_account_takes_run_envs_and_without_any_exits_2(
    cli_env: dict[str, str], tmp_path: Path, kafka_settings: KafkaSettings, account: uuid.UUID
) -> None:
    run_env = tmp_path / ".roomhooks" / "run.env"
    run_env.parent.mkdir()
    run_env.write_text(f"export ROOMHOOKS_ACCOUNT_ID='{account}'\n")

    result = await run_cli(["publish", "--event", "member.added"], env=cli_env, cwd=tmp_path)

    assert (result.code, result.stderr) == (0, "")
    records = await read_topic(
        kafka_settings, Topics.from_settings(kafka_settings).events, at_least=1
    )
    assert parse_event(records[0].value or b"").organization_id == str(account)

    run_env.unlink()
    refused = await run_cli(["publish", "--event", "member.added"], env=cli_env, cwd=tmp_path)
    assert refused.code == 2
    assert refused.stderr.startswith("roomhooks: error: --account is required")


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["publish", "--event", "participant.exploded", "--room", '{"id": "r"}'], "--event"),
        (["publish", "--event", "participant.joined", "--room", "{not json"], "--room"),
        (["publish", "--event", "participant.joined", "--user", '{"id": "u"}'], "--room"),
        (["publish", "--event", "participant.joined", "--room", '{"id": "r"}'], "--user"),
        (["publish", "--event", "member.added", "--room", '{"id": "r"}'], "--room"),
        (["keys", "create", "--role", "BOSS"], "--role"),
    ],
    ids=[
        "unknown-event",
        "invalid-room-json",
        "room-event-without-room",
        "participant-without-user",
        "organization-event-with-room",
        "bad-role",
    ],
)
async def test_bad_input_exits_2_with_one_line_naming_the_problem(
    cli_env: dict[str, str], tmp_path: Path, account: uuid.UUID, args: list[str], problem: str
) -> None:
    result = await run_cli([*args, "--account", str(account)], env=cli_env, cwd=tmp_path)

    assert result.code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"roomhooks: error: {problem}")


@pytest.mark.parametrize(
    "args",
    [
        ["keys", "create", "--role", "OWNER", "--account", "{id}"],
        ["publish", "--event", "member.added", "--account", "{id}"],
    ],
    ids=["keys", "publish"],
)
async def test_an_unknown_account_exits_2(
    cli_env: dict[str, str], tmp_path: Path, args: list[str]
) -> None:
    missing = str(uuid.uuid4())
    result = await run_cli([a.replace("{id}", missing) for a in args], env=cli_env, cwd=tmp_path)

    assert result.code == 2
    assert result.stderr.splitlines() == [f"roomhooks: error: --account: no account {missing}"]


async def test_a_malformed_account_id_exits_2(cli_env: dict[str, str], tmp_path: Path) -> None:
    result = await run_cli(
        ["keys", "create", "--account", "not-a-uuid", "--role", "OWNER"], env=cli_env, cwd=tmp_path
    )

    assert result.code == 2
    assert result.stderr.splitlines() == ["roomhooks: error: --account: 'not-a-uuid' is not a UUID"]


async def test_unreachable_postgres_exits_1_with_one_line(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**cli_env, "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"}
    result = await run_cli(["accounts", "create"], env=env, cwd=tmp_path)

    assert result.code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("roomhooks: error: cannot reach Postgres")


async def test_unreachable_broker_exits_1_with_one_line(
    cli_env: dict[str, str], tmp_path: Path, account: uuid.UUID
) -> None:
    env = {**cli_env, "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"}
    result = await run_cli(
        ["publish", "--account", str(account), "--event", "member.added"], env=env, cwd=tmp_path
    )

    assert result.code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("roomhooks: error: cannot publish to Kafka")


async def test_connections_come_from_run_env_when_the_environment_has_none(
    database_url: str, tmp_path: Path, pool: asyncpg.Pool
) -> None:
    state = tmp_path / ".roomhooks"
    state.mkdir()
    (state / "run.env").write_text(f"export DATABASE_URL='{database_url}'\n")

    result = await run_cli(["accounts", "create"], env=clean_environ(), cwd=tmp_path)

    assert (result.code, result.stderr) == (0, "")
    account_id = uuid.UUID(result.stdout.strip())
    assert await pool.fetchval("SELECT 1 FROM registry.accounts WHERE id = $1", account_id)
