"""`roomhooks state put-kv|put-file` put room-state records where the runner reads them."""

from __future__ import annotations

import json

import pytest

from tests.integration.test_cli import run_cli
from tests.support.kafka import read_topic

pytestmark = pytest.mark.integration

ORG = "6f1c2f7e-2a55-4c3e-9f57-1b0c6a8e1d11"


async def test_put_kv_and_put_file_publish_room_state_records(
    cli_env, kafka_settings, topics, tmp_path
):
    kv = await run_cli(
        ["state", "put-kv", "--account", ORG, "--room", "r1", "--store", "settings",
         "--key", "user-001", "--value", '{"theme": "dark"}'],
        env=cli_env, cwd=tmp_path,
    )  # fmt: skip
    assert kv.code == 0, kv.stderr
    assert kv.stdout.strip() == f"{ORG}/r1/kv/settings/user-001"
    file = await run_cli(
        ["state", "put-file", "--account", ORG, "--room", "r1", "--path", "docs/a.pdf",
         "--metadata", '{"size": 1024}'],
        env=cli_env, cwd=tmp_path,
    )  # fmt: skip
    assert file.code == 0, file.stderr
    gone = await run_cli(
        ["state", "put-kv", "--account", ORG, "--room", "r1", "--store", "settings",
         "--key", "user-001", "--delete"],
        env=cli_env, cwd=tmp_path,
    )  # fmt: skip
    assert gone.code == 0, gone.stderr

    records = await read_topic(kafka_settings, topics.room_state, at_least=3)
    by_key: dict[bytes, list] = {}
    for record in records:
        by_key.setdefault(record.key, []).append(record.value)
    assert by_key[f"{ORG}/r1/kv/settings/user-001".encode()] == [b'{"theme":"dark"}', None]
    assert [json.loads(v) for v in by_key[f"{ORG}/r1/file/docs/a.pdf".encode()]] == [{"size": 1024}]


async def test_state_without_account_takes_run_envs_and_without_any_exits_2(
    cli_env, kafka_settings, topics, tmp_path
):
    run_env = tmp_path / ".roomhooks" / "run.env"
    run_env.parent.mkdir()
    run_env.write_text(f"export ROOMHOOKS_ACCOUNT_ID='{ORG}'\n")
    args = ["state", "put-kv", "--room", "r2", "--store", "s", "--key", "k", "--value", "1"]

    put = await run_cli(args, env=cli_env, cwd=tmp_path)

    assert (put.code, put.stderr) == (0, "")
    assert put.stdout.strip() == f"{ORG}/r2/kv/s/k"
    records = await read_topic(kafka_settings, topics.room_state, at_least=1)
    assert [r.key for r in records] == [f"{ORG}/r2/kv/s/k".encode()]

    run_env.unlink()
    refused = await run_cli(args, env=cli_env, cwd=tmp_path)
    assert refused.code == 2
    assert refused.stderr.startswith("roomhooks: error: --account is required")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["put-kv", "--room", "r1", "--store", "s", "--key", "k"], "--value is required"),
        (["put-kv", "--room", "r/1", "--store", "s", "--key", "k", "--value", "1"], "'/'"),
        (["put-kv", "--room", "r1", "--store", "s", "--key", "k", "--value", "{"], "--value"),
        (["put-file", "--room", "r1", "--path", "a", "--metadata", "[1]"], "JSON object"),
        (["put-file", "--room", "r1", "--path", "a", "--metadata", "{}", "--delete"],
         "exclude each other"),
    ],
)  # fmt: skip
async def test_bad_state_input_is_one_line_and_exit_2(cli_env, tmp_path, args, needle):
    result = await run_cli(["state", *args[:1], "--account", ORG, *args[1:]],
                           env=cli_env, cwd=tmp_path)  # fmt: skip
    assert result.code == 2
    assert needle in result.stderr and len(result.stderr.strip().splitlines()) == 1
