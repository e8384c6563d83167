"""A workflow's `fetch`, run in the real sandbox through the runner's Fetcher to a real local HTTP
server, says who sends it: `User-Agent: roomhooks-workflow/<version>`, as deliveries say
`roomhooks/<version>`; a User-Agent the code sets itself is sent as it is."""

from __future__ import annotations

from collections.abc import AsyncIterator
from importlib.metadata import version

import aiohttp
import pytest

from services.workflow_runner.bindings import Fetcher, RoomBindings
from services.workflow_runner.sandbox import Sandbox, SandboxSettings
from shared.guarded_resolver import GuardedResolver
from shared.ssrf import AddressPolicy
from tests.support.receiver import Receiver
from tests.support.runner_fakes import FakeProjection
from tests.support.sandbox import ORGANIZATION, request

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def sandbox() -> AsyncIterator[Sandbox]:
    sandbox = Sandbox(SandboxSettings(max_hosts=1, wall_timeout_s=5.0))
    await sandbox.start()
    yield sandbox
    await sandbox.close()


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    """As the runner builds it (app.open_fetcher), with loopback allowed as in the dev profile."""
    policy = AddressPolicy.build(allow_loopback=True, allowed_networks=())
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(resolver=GuardedResolver(policy)), auto_decompress=False
    ) as session:
        yield Fetcher(session, policy=policy, timeout_s=5.0, max_bytes=65536)


async def fetched_user_agent(
    sandbox: Sandbox, fetcher: Fetcher, receiver: Receiver, path: str, init: str
) -> str:
    url = receiver.url(path)
    code = f"export default async () => (await fetch({url!r}{init})).status;"
    bindings = RoomBindings(
        FakeProjection(), fetcher, organization_id=ORGANIZATION, room_id="room-1"
    )
    outcome = await sandbox.run(request(code, workflow=f"wf-{path[1:]}", run=path[1:]), bindings)
    assert (outcome.status, outcome.result) == ("success", 200), outcome.error
    [received] = receiver.received[path]
    return received.headers["User-Agent"]


async def test_a_workflow_s_fetch_says_it_comes_from_a_roomhooks_workflow(
    sandbox: Sandbox, fetcher: Fetcher, receiver: Receiver
) -> None:
    agent = await fetched_user_agent(sandbox, fetcher, receiver, "/plain", "")
    assert agent == f"roomhooks-workflow/{version('roomhooks')}"


async def test_a_user_agent_the_code_sets_is_sent_as_it_is(
    sandbox: Sandbox, fetcher: Fetcher, receiver: Receiver
) -> None:
    init = ', { headers: { "User-Agent": "acme-bot/2.1" } }'
    assert await fetched_user_agent(sandbox, fetcher, receiver, "/own", init) == "acme-bot/2.1"
