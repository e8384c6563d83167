"""`roomhooks trigger` as a user runs it: a realistic sample on the real events topic, `--set`
overrides, refusals (exit 2) and an unreachable broker (exit 1); and, on the running platform,
a webhook made with the CLI receiving a triggered event, seen in its deliveries and the log."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from shared.events import parse_event
from shared.events.samples import ROOM
from shared.kafka import Topics
from shared.settings import KafkaSettings
from tests.integration import test_pipeline
from tests.integration.test_cli import account, run_cli
from tests.integration.test_cli_webhooks import api_env, failed, fields, succeeded
from tests.support.kafka import read_topic
from tests.support.polling import eventually
from tests.support.services import free_port

pytestmark = pytest.mark.integration

__all__ = ["account", "platform"]  # fixtures shared with test_cli.py and test_pipeline.py
platform = test_pipeline.platform


async def events_topic(kafka: KafkaSettings, at_least: int) -> list:
    return await read_topic(kafka, Topics.from_settings(kafka).events, at_least=at_least)


async def test_trigger_publishes_a_realistic_sample_keyed_by_its_room(
    cli_env: dict[str, str], tmp_path: Path, kafka_settings: KafkaSettings, account: uuid.UUID
) -> None:
    result = await run_cli(
        ["trigger", "participant.joined", "--account", str(account)], env=cli_env, cwd=tmp_path
    )

    event_id = succeeded(result).strip()
    [record] = await events_topic(kafka_settings, 1)
    assert record.key == ROOM["id"].encode()
    assert record.headers == {"content-type": b"application/json"}
    event = parse_event(record.value or b"")
    assert (event.id, event.event, event.organization_id) == (
        event_id,
        "participant.joined",
        str(account),
    )
    assert event.room.name == ROOM["name"]
    assert event.user.model_dump()["name"] == "Ada Lovelace"


async def test_set_overrides_the_sample_and_json_prints_exactly_what_was_published(
    cli_env: dict[str, str], tmp_path: Path, kafka_settings: KafkaSettings, account: uuid.UUID
) -> None:
    argv = ["trigger", "session.closed", "--account", str(account), "--json"]
    sets = ["--set", 'room.id="room-9"', "--set", "users.1.name=Linus", "--set", "id=evt-cli-9"]

    printed = json.loads(succeeded(await run_cli([*argv, *sets], env=cli_env, cwd=tmp_path)))

    [record] = await events_topic(kafka_settings, 1)
    assert record.key == b"room-9"
    assert json.loads(record.value or b"") == printed
    assert (printed["id"], printed["room"]["id"]) == ("evt-cli-9", "room-9")
    assert [u["name"] for u in printed["users"]] == ["Ada Lovelace", "Linus"]


async def test_an_organization_event_is_keyed_by_the_account_taken_from_the_environment(
    cli_env: dict[str, str], tmp_path: Path, kafka_settings: KafkaSettings, account: uuid.UUID
) -> None:
    env = {**cli_env, "ROOMHOOKS_ACCOUNT_ID": str(account)}

    event_id = succeeded(await run_cli(["trigger", "member.added"], env=env, cwd=tmp_path))

    [record] = await events_topic(kafka_settings, 1)
    assert record.key == str(account).encode()
    event = json.loads(record.value or b"")
    assert (event["id"], event["room"]) == (event_id.strip(), None)
    assert event["organization"]["id"] == str(account)
    assert event["member"]["name"] == "Grace Hopper"


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["trigger", "party.started"], "EVENT: unknown event 'party.started'"),
        (["trigger", "participant.joined", "--set", "room.plan=pro"],
         "--set room.plan: room has no field 'plan' (it has: id, name)"),
        (["trigger", "participant.joined", "--set", "room.id=42"],
         "--set: the catalog refuses the result (room.id:"),
        (["trigger", "participant.joined", "--set", "room.name"], "--set: 'room.name' is not"),
        (["trigger", "member.added", "--set", "organization_id=x"],
         "--set organization_id: use --account"),
        (["trigger", "member.added", "--account", "{missing}"], "--account: no account"),
    ],
    ids=["event", "path", "refused", "no-value", "organization", "unknown-account"],
)  # fmt: skip
async def test_bad_input_exits_2_and_publishes_nothing(
    cli_env: dict[str, str],
    tmp_path: Path,
    kafka_settings: KafkaSettings,
    account: uuid.UUID,
    args: list[str],
    problem: str,
) -> None:
    env = {**cli_env, "ROOMHOOKS_ACCOUNT_ID": str(account)}
    argv = [a.replace("{missing}", str(uuid.uuid4())) for a in args]

    result = await run_cli(argv, env=env, cwd=tmp_path)

    assert failed(result, 2).startswith(problem)
    assert await events_topic(kafka_settings, 0) == []


async def test_an_unreachable_broker_exits_1(
    cli_env: dict[str, str], tmp_path: Path, account: uuid.UUID
) -> None:
    env = {**cli_env, "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"}

    result = await run_cli(
        ["trigger", "member.added", "--account", str(account)], env=env, cwd=tmp_path
    )

    assert failed(result, 1).startswith("cannot publish to Kafka at ")


async def test_a_webhook_made_with_the_cli_receives_a_triggered_event(
    cli_env: dict[str, str], tmp_path: Path, platform, registry
) -> None:
    env = api_env(cli_env, registry)
    create = ["webhooks", "create", "--url", platform.receiver.url("/cli"), "--json"]
    created = await run_cli([*create, "--events", "participant.joined"], env=env, cwd=tmp_path)
    assert created.code == 0, created
    webhook = json.loads(created.stdout)["webhook"]

    async def indexed() -> bool:
        return platform.fanout.index.get(webhook["id"]) is not None

    await eventually(indexed, timeout_s=15)

    triggered = await run_cli(["trigger", "participant.joined"], env=env, cwd=tmp_path)
    event_id = succeeded(triggered).strip()

    async def arrived() -> bool:
        return len(platform.receiver.received["/cli"]) == 1

    await eventually(arrived, timeout_s=30)
    body = platform.bodies("/cli")[0]
    assert (body["id"], body["data"]) == (event_id, {"roomId": ROOM["id"], "userId": "user-001"})

    async def delivered() -> str | None:
        listed = await run_cli(["deliveries", "list", webhook["id"]], env=env, cwd=tmp_path)
        rows = succeeded(listed).splitlines()[1:]
        return rows[0] if rows and rows[0].split()[2] == "success" else None

    row = await eventually(delivered, timeout_s=30)
    logged = succeeded(await run_cli(["events", "get", event_id], env=env, cwd=tmp_path))
    assert fields(logged.split("\n\n")[0])["status"] == "accepted"
    assert f"{webhook['id']}  {row.split()[0]}" in logged
