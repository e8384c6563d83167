"""The SSRF scenario: with every service configured as in production, webhook URLs and
workflow fetches that would reach loopback, private, link-local or metadata addresses are
refused, at creation where the URL shows it and at send time always, with the reason
recorded.

Everything here runs on loopback, so the one endpoint that must stay reachable, standing in
for the public internet, is 127.0.0.2: the operator allows exactly that /32
(`allowed_networks`, and `allowed_http_hosts` at the registry), as one would allow an
egress proxy. 127.0.0.1, where the targets that must never be reached listen, stays refused
with the rest of loopback. A tripwire fails any connection to a non-loopback address, so a
guard that regressed would fail the test rather than send traffic off the machine.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from services.delivery.app import Delivery
from services.delivery.settings import DeliverySettings
from services.registry.settings import RegistrySettings
from services.workflow_runner.app import Runner
from services.workflow_runner.settings import RunnerSettings
from shared.kafka import JSON_HEADERS, dumps
from shared.messages import WorkflowRunRequested, run_id_for
from shared.settings import Profile, RuntimeSettings
from tests.support.deliveries import request_deliveries
from tests.support.network import ConnectionCounter, TableResolver, loopback_only
from tests.support.polling import eventually
from tests.support.receiver import Receiver, Script

pytestmark = pytest.mark.integration

STAND_IN = "127.0.0.2"  # the "public" endpoint: allowed by the operator, nothing else local
PRODUCTION = RuntimeSettings(profile=Profile.PRODUCTION)
# A customer's name whose DNS answers loopback: set so from the start, or rebound later.
REBOUND = "hooks.customer.example"


@pytest.fixture
def registry_settings(postgres_settings, kafka_settings) -> RegistrySettings:
    return RegistrySettings(
        runtime=PRODUCTION,
        postgres=postgres_settings,
        kafka=kafka_settings,
        allowed_http_hosts=[STAND_IN],
    )


@pytest.fixture
async def tripwire() -> AsyncIterator[list]:
    with loopback_only() as attempted:
        yield attempted


@pytest.fixture
async def inside() -> AsyncIterator[ConnectionCounter]:
    """An internal service on 127.0.0.1 that no request may reach."""
    counter = ConnectionCounter("127.0.0.1")
    await counter.start()
    yield counter
    await counter.stop()


@pytest.fixture
async def stand_in() -> AsyncIterator[Receiver]:
    receiver = Receiver(host=STAND_IN)
    await receiver.start()
    yield receiver
    await receiver.stop()


@pytest.fixture
def as_in_production(postgres_settings, kafka_settings) -> dict:
    """Settings of delivery and the runner: the production profile (loopback refused), the
    operator allowing the stand-in's /32 and nothing else."""
    return {
        "runtime": PRODUCTION,
        "postgres": postgres_settings,
        "kafka": kafka_settings,
        "allowed_networks": [f"{STAND_IN}/32"],
        "health_port": 0,
    }


@pytest.fixture
async def delivery(as_in_production) -> AsyncIterator[Delivery]:
    settings = DeliverySettings(**as_in_production, scheduler_interval_s=0.1)
    service = Delivery(settings, resolver=TableResolver({REBOUND: "127.0.0.1"}))
    await service.start()
    yield service
    await service.stop()


async def create_webhook(registry, url: str, **fields):
    r = registry
    body = {"url": url, "events": ["participant.joined"], **fields}
    return await r.http.post(r.webhooks_url(r.alice), json=body, headers=r.alice.auth())


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://10.0.0.1/hook",
        "https://172.16.0.1/hook",
        "https://192.168.1.1/hook",
        "https://100.64.0.1/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://169.254.1.1/hook",
        "https://0.0.0.0/hook",
        "https://[::1]/hook",
        "https://[::]/hook",
        "https://[fd00::1]/hook",
        "https://[fe80::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://[::ffff:169.254.169.254]/hook",
        "https://[::ffff:0:a00:1]/hook",
        "https://[64:ff9b::a9fe:a9fe]/hook",
        "https://[2002:c0a8:101::1]/hook",
        "https://[::127.0.0.1]/hook",
        "https://2130706433/hook",
        "https://0177.0.0.1/hook",
        "https://0x7f.1/hook",
        "https://127.1/hook",
        "https://localhost/hook",
        "https://metadata.google.internal/computeMetadata/v1/",
        "https://metadata/computeMetadata/v1/",
        "http://hooks.customer.example/hook",  # production is https only
    ],
)
async def test_creating_a_webhook_to_a_blocked_url_is_a_400_naming_url(registry, url):
    resp = await create_webhook(registry, url)
    assert resp.status == 400, await resp.text()
    error = (await resp.json())["error"]
    assert error["code"] == "validation_error"
    assert [d["field"] for d in error["details"]] == ["url"]
    message = error["details"][0]["message"]
    assert "public address" in message or "https" in message, message
    # Changing a webhook's URL to one is refused the same way.
    ok = await create_webhook(registry, f"http://{STAND_IN}:9/hook")
    assert ok.status == 201, await ok.text()
    webhook = (await ok.json())["data"]["webhook"]
    url_of = registry.webhooks_url(registry.alice, webhook["id"])
    patched = await registry.http.patch(url_of, json={"url": url}, headers=registry.alice.auth())
    assert patched.status == 400
    assert [d["field"] for d in (await patched.json())["error"]["details"]] == ["url"]


class Deliveries:
    def __init__(self, registry, producer, topics) -> None:
        self.registry, self.producer, self.topics = registry, producer, topics

    async def webhook(self, url: str) -> dict:
        resp = await create_webhook(self.registry, url, retrySchedule=[])  # one attempt
        assert resp.status == 201, await resp.text()
        return (await resp.json())["data"]["webhook"]

    async def deliver(self, webhook: dict) -> dict:
        """One delivery, as fanout would request it; its attempts once it has ended."""
        [delivery_id] = await request_deliveries(
            self.producer, self.topics.deliveries, webhook, [str(uuid.uuid4())]
        )
        r = self.registry
        url = r.webhooks_url(r.alice, webhook["id"]) + f"/deliveries/{delivery_id}"

        async def ended():
            resp = await r.http.get(url, headers=r.alice.auth())
            found = (await resp.json())["data"] if resp.status == 200 else None
            return found if found and found["delivery"]["status"] != "pending" else None

        return await eventually(ended, timeout_s=20)


@pytest.fixture
def deliveries(registry, producer, topics) -> Deliveries:
    return Deliveries(registry, producer, topics)


async def test_a_name_resolving_to_loopback_fails_with_the_reason_and_no_connection(
    deliveries, delivery, inside, tripwire
):
    # Accepted at creation: a public-looking name is not resolved there. At send time the
    # guard sees what it resolves to (here loopback, where `inside` listens).
    webhook = await deliveries.webhook(inside.url("/hook", scheme="https", host=REBOUND))
    ended = await deliveries.deliver(webhook)
    assert ended["delivery"]["status"] == "failed"
    assert ended["delivery"]["next_retry_at"] is None  # refused: retrying cannot help
    [attempt] = ended["attempts"]
    assert attempt["error"] == (
        f"refused by the SSRF guard: {REBOUND} resolves only to a loopback address"
    )
    assert attempt["status_code"] is None
    assert inside.accepted == 0
    assert tripwire == []


@pytest.mark.parametrize(
    ("location", "refusal"),
    [
        ("http://127.0.0.1:{port}/admin", "127.0.0.1 is a loopback address"),
        ("http://[::ffff:127.0.0.1]:{port}/admin", "::ffff:7f00:1 is a loopback address"),
        ("http://0x7f.1:{port}/admin", "0x7f.1 (127.0.0.1) is a loopback address"),
        (
            "http://169.254.169.254/latest/meta-data/",
            "169.254.169.254 is the cloud metadata address",
        ),
        (f"https://{REBOUND}:{{port}}/admin", None),  # a name: not followed, not resolved
    ],
)
async def test_a_redirect_from_an_allowed_endpoint_to_a_blocked_one_is_not_followed(
    deliveries, delivery, stand_in, inside, tripwire, location, refusal
):
    target = location.format(port=inside.port)
    hop = stand_in.script("/moved", Script(statuses=[307], headers={"Location": target}))
    webhook = await deliveries.webhook(hop)
    ended = await deliveries.deliver(webhook)
    assert ended["delivery"]["status"] == "failed"
    [attempt] = ended["attempts"]
    assert attempt["status_code"] == 307
    assert attempt["error"].startswith(f"redirect to {target} not followed")
    if refusal is not None:
        assert attempt["error"].endswith(f"; refused by the SSRF guard: {refusal}")
    assert len(stand_in.received["/moved"]) == 1  # the allowed hop was reached, once
    assert inside.accepted == 0
    assert tripwire == []


# Each fetch's outcome, in order, as the workflow's result.
FETCHES = """export default async function(event) {
  const outcome = async (url) => {
    try {
      const r = await fetch(url);
      return { status: r.status, location: r.headers.get('location') };
    } catch (e) { return { refused: e.message }; }
  };
  const results = [];
  for (const url of event.data.urls) results.push(await outcome(url));
  const hop = results[results.length - 1];
  if (hop.location) results.push(await outcome(hop.location));  // code that follows a 3xx
  return results;
}"""


@pytest.fixture
async def runner(as_in_production) -> AsyncIterator[Runner]:
    service = Runner(RunnerSettings(**as_in_production, hosts=1))
    await service.start()
    yield service
    await service.stop()


async def test_workflow_fetches_to_metadata_loopback_names_and_redirects_are_refused_and_logged(
    registry, producer, topics, runner, stand_in, inside, tripwire
):
    alice = registry.alice
    resp = await registry.http.post(
        f"{registry.url}/v1/accounts/{alice.id}/workflows",
        json={"name": "prober", "events": ["participant.joined"], "code": FETCHES},
        headers=alice.auth(),
    )
    assert resp.status == 201, await resp.text()
    workflow = (await resp.json())["data"]["workflow"]
    metadata = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"
    by_name = inside.url("/admin", host="localhost")  # resolved by the system: 127.0.0.1
    hop = stand_in.script("/moved", Script(statuses=[302], headers={"Location": inside.url("/x")}))
    event_id = str(uuid.uuid4())
    request = WorkflowRunRequested(
        run_id=run_id_for(workflow["id"], event_id),
        workflow_id=workflow["id"],
        version=workflow["version"],
        organization_id=alice.id,
        room_id=None,
        event_id=event_id,
        event={
            "id": event_id,
            "event": "participant.joined",
            "data": {"urls": [metadata, by_name, hop]},
        },
        created_at=datetime.now(UTC),
    )
    await producer.send_and_wait(
        topics.workflow_runs,
        dumps(request.model_dump(mode="json")),
        key=workflow["id"].encode(),
        headers=JSON_HEADERS,
    )
    url = f"{registry.url}/v1/accounts/{alice.id}/workflows/{workflow['id']}/executions"

    async def finished():
        body = await (await registry.http.get(url, headers=alice.auth())).json()
        done = [e for e in body["data"]["executions"] if e["status"] != "running"]
        return done[0] if done else None

    execution = await eventually(finished, timeout_s=30, interval_s=0.2)
    assert execution["status"] == "success", execution
    guard = "refused: refused by the SSRF guard"
    assert execution["result"] == [
        {"refused": f"fetch GET {metadata} {guard}: 169.254.169.254 is the cloud metadata address"},
        {"refused": f"fetch GET {by_name} {guard}: localhost resolves only to a loopback address"},
        {"status": 302, "location": inside.url("/x")},
        {"refused": f"fetch GET {inside.url('/x')} {guard}: 127.0.0.1 is a loopback address"},
    ]
    logged = [e["message"] for e in execution["logs"]]
    for refused in (metadata, by_name, inside.url("/x")):
        assert any(refused in m and "SSRF guard" in m for m in logged), (refused, logged)
    assert any(f"fetch GET {hop} -> 302" in m for m in logged), logged
    assert len(stand_in.received["/moved"]) == 1
    assert inside.accepted == 0
    assert tripwire == []
