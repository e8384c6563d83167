"""`roomhooks dev` as `make run` starts it, looked at once it says ready: what it printed, its
run.env, its own broker's topics, its services' environment and /readyz.

None of these tests changes the stack, so they share one (starting one takes 10-20 s). It
lives in a module of its own so that it never runs beside the stacks of test_devstack.py,
whose tests stop them, kill parts of them or start them twice.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer

from devtool.broker import TANSU_GAP_RECHECK_MS, TANSU_METADATA_MAX_AGE_MS
from devtool.devstack import DevSettings
from shared.kafka import Topics
from shared.secrets_box import SecretsBox
from tests.integration.test_devstack import NOT_QUIET, broker_and_services
from tests.support.devstack import Stack, command_line, dev_environ, ready_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def shared_stack(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str
) -> AsyncIterator[tuple[Stack, list[str]]]:
    """One ready stack on a database, ports and state folder of its own, for the tests that
    only look at it (what it printed, its run.env, its broker's topics, its services'
    environment and /readyz): none of them changes it, and starting one takes 10-20 s. With
    it, every line it had printed (stdout, then stderr) when it said ready."""
    state_dir = tmp_path_factory.mktemp("devstack") / "state"
    env = dev_environ(state_dir, DATABASE_URL=module_database_url)
    async with ready_stack(env, state_dir) as stack:
        yield stack, [*stack.stdout, *stack.stderr]


@pytest.fixture
def ready(shared_stack: tuple[Stack, list[str]]) -> Stack:
    return shared_stack[0]


async def readyz_status(url: str) -> int | None:
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
            session.get(url) as response,
        ):
            return response.status
    except (aiohttp.ClientError, TimeoutError):
        return None


async def test_run_env_names_the_stack_it_started(ready: Stack, module_database_url: str) -> None:
    env = ready.run_env()
    assert set(env) == {
        "ROOMHOOKS_API_URL",
        "ROOMHOOKS_ACCOUNT_ID",
        "ROOMHOOKS_OWNER_TOKEN",
        "ROOMHOOKS_MEMBER_TOKEN",
        "KAFKA_BOOTSTRAP_SERVERS",
        "DATABASE_URL",
        "ROOMHOOKS_SECRETS_KEY",
    }
    assert env["DATABASE_URL"] == module_database_url
    SecretsBox([env["ROOMHOOKS_SECRETS_KEY"]])  # a usable key (a bad one raises)
    assert env["ROOMHOOKS_SECRETS_KEY"] not in "\n".join(ready.stdout + ready.stderr)
    with socket.create_connection(tuple(env["KAFKA_BOOTSTRAP_SERVERS"].rsplit(":", 1)), timeout=5):
        pass
    assert (ready.state_dir / "run.env").stat().st_mode & 0o077 == 0
    assert env["ROOMHOOKS_OWNER_TOKEN"] in "\n".join(ready.stdout)


async def test_its_own_broker_gets_the_dev_partition_count_on_every_topic(ready: Stack):
    consumer = AIOKafkaConsumer(bootstrap_servers=ready.run_env()["KAFKA_BOOTSTRAP_SERVERS"])
    await consumer.start()
    try:
        names = [t for t in await consumer.topics() if t.startswith("roomhooks.")]
        counts = {t: len(consumer.partitions_for_topic(t) or ()) for t in names}
    finally:
        await consumer.stop()
    assert len(counts) == len(Topics().all())
    wanted = DevSettings.model_fields["broker_partitions"].default
    assert set(counts.values()) == {wanted}


async def test_its_own_broker_has_every_service_fetch_a_gap_in_offsets_again(ready: Stack):
    """The dev broker's race (shared/offset_gaps.py): on by the stack for the broker it starts."""
    services = [c for c in await broker_and_services(ready) if "services." in command_line(c)]
    assert services
    assert {c.environ().get("KAFKA_GAP_RECHECK_MS") for c in services} == {
        str(TANSU_GAP_RECHECK_MS)
    }


async def test_its_own_broker_has_every_service_read_the_metadata_again_within_seconds(
    ready: Stack,
) -> None:
    """The broker it restarts comes back without topics, and a group that re-forms before the
    stack has made them again finds their partitions only when it reads the metadata again."""
    services = [c for c in await broker_and_services(ready) if "services." in command_line(c)]
    assert services
    assert {c.environ().get("KAFKA_METADATA_MAX_AGE_MS") for c in services} == {
        str(TANSU_METADATA_MAX_AGE_MS)
    }


async def test_says_ready_only_once_every_service_answers_ready(ready: Stack) -> None:
    """The ready line came first (the fixture waited for it); every /readyz is asked after."""
    urls = ready.readyz_urls()
    assert set(urls) == {"registry", "fanout", "delivery", "workflow_runner"}
    statuses = {service: await readyz_status(url) for service, url in urls.items()}
    assert statuses == dict.fromkeys(urls, 200)
    ready_at = next(i for i, line in enumerate(ready.stdout) if "roomhooks ready" in line)
    assert any("  database     " in line for line in ready.stdout[:ready_at])


async def test_a_first_run_warns_of_nothing(shared_stack: tuple[Stack, list[str]]) -> None:
    """Every line up to ready is information: nothing that asks the user to act."""
    stack, printed_by_ready = shared_stack
    loud = [line for line in printed_by_ready if NOT_QUIET.search(line)]
    assert loud == [], stack.output()
