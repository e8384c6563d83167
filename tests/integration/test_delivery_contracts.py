"""One suite per Protocol DeliveryService depends on (services/delivery/dependencies.py),
run against the fake (tests/support/delivery_fakes.py) and the real adapter: the store and
the attempt log on Postgres, the poster against a local HTTP server, the targets on the
registry's table. A fake that drifts from the real thing fails here."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from services.delivery.dependencies import (
    AttemptLog,
    DeliveryStore,
    TargetLookup,
    UpkeepStore,
    WebhookPoster,
)
from services.delivery.dispatcher import Dispatcher
from services.delivery.policy import Outcome
from services.delivery.recorder import AttemptRecorder
from services.delivery.recoveries import PostgresUpkeep
from services.delivery.repository import PostgresDeliveryStore
from services.delivery.rows import AttemptRow, Job, Target
from services.delivery.targets import Targets
from shared.failures import is_content_error
from shared.messages import (
    DeliveryRequested,
    RecoverRequested,
    RedeliverRequested,
    delivery_id_for,
)
from shared.secrets_box import SecretsBox, seal_headers
from shared.signing import PreviousSecret
from shared.ssrf import AddressPolicy
from tests.support.delivery_fakes import FakeAttemptLog, FakeDeliveryStore, FakePoster, FakeTargets
from tests.support.secrets import TEST_SECRETS_KEY
from tests.support.services import free_port

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)
KINDS = ["fake", "real"]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def request(event_id: str, webhook: str | None = None, body: str = "{}") -> DeliveryRequested:
    webhook = webhook or str(uuid.uuid4())
    return DeliveryRequested(
        delivery_id=delivery_id_for(webhook, event_id),
        webhook_id=webhook,
        organization_id=str(uuid.UUID(int=1)),
        event_id=event_id,
        event="participant.joined",
        body=body,
        created_at=T0,
    )


async def stored(store: DeliveryStore, *requests: DeliveryRequested, now: datetime = T0):
    jobs, _ = await store.store_requests(requests, [], now=now, lease_until=now + LEASE)
    return jobs


async def claim(store: DeliveryStore, now: datetime, limit: int = 10, skip=()) -> list[Job]:
    return await store.claim_due(now=now, lease_until=now + LEASE, limit=limit, skip_webhooks=skip)


# --- DeliveryStore --------------------------------------------------------------------------


@pytest.fixture(params=KINDS)
def pool_or_fake(request: pytest.FixtureRequest) -> asyncpg.Pool | None:
    """The test's Postgres for the real adapter; None for the fake."""
    return request.getfixturevalue("pool") if request.param == "real" else None


@pytest.fixture
def store(pool_or_fake: asyncpg.Pool | None) -> DeliveryStore:
    return FakeDeliveryStore() if pool_or_fake is None else PostgresDeliveryStore(pool_or_fake)


async def test_a_stored_request_is_returned_leased_and_storing_it_again_returns_nothing(store):
    first = request("e1")
    [job] = await stored(store, first, first)
    assert (str(job.id), job.attempts, job.lease_until) == (first.delivery_id, 0, T0 + LEASE)
    assert (job.event, job.payload) == ("participant.joined", "{}")
    assert await stored(store, first, now=at(1)) == []


async def test_a_leased_delivery_is_claimed_only_once_its_lease_runs_out(store):
    [job] = await stored(store, request("e1"))
    assert await claim(store, at(59)) == []
    [claimed] = await claim(store, at(60))
    assert (claimed.id, claimed.lease_until) == (job.id, at(60) + LEASE)
    assert await claim(store, at(61)) == []  # no two claims of the same delivery


async def test_claims_take_the_oldest_due_first_up_to_the_limit_skipping_named_webhooks(store):
    skipped = str(uuid.uuid4())
    jobs = [(await stored(store, request(f"e{n}"), now=at(n)))[0] for n in range(3)]
    await stored(store, request("e-skipped", webhook=skipped))
    later = at(200)
    claimed = await claim(store, later, limit=2, skip=[uuid.UUID(skipped)])
    assert [job.id for job in claimed] == [jobs[0].id, jobs[1].id]
    assert [job.id for job in await claim(store, later, skip=[uuid.UUID(skipped)])] == [jobs[2].id]


async def test_a_lease_is_renewed_by_its_holder_only(store):
    [job] = await stored(store, request("e1"))
    assert await store.renew_lease(job, lease_until=at(90)) == at(90)
    assert await store.renew_lease(job, lease_until=at(95)) is None  # not the lease held now
    [elsewhere] = await claim(store, at(90))
    assert await store.renew_lease(elsewhere, lease_until=at(200)) == at(200)


async def test_a_released_delivery_is_unleased_and_due_at_the_given_time(store):
    [job] = await stored(store, request("e1"))
    await store.release([job], due_at=at(5))
    assert await claim(store, at(4)) == []
    assert [claimed.id for claimed in await claim(store, at(5))] == [job.id]


async def test_a_stopped_delivery_is_never_claimed_nor_renewed_until_redelivered(store):
    [job] = await stored(store, request("e1"))
    await store.stop([job], reason="webhook deleted", now=T0)
    assert await claim(store, at(3600)) == []
    assert await store.renew_lease(job, lease_until=at(90)) is None
    order = RedeliverRequested(
        delivery_id=str(job.id),
        webhook_id=str(job.webhook_id),
        organization_id=str(job.organization_id),
        requested_at=at(10),
    )
    unknown = order.model_copy(update={"delivery_id": str(uuid.uuid4())})
    jobs, found = await store.store_requests(
        [], [order, unknown], now=at(10), lease_until=at(10) + LEASE
    )
    assert (jobs, found) == ([], [True, False])
    assert [claimed.id for claimed in await claim(store, at(10))] == [job.id]


async def test_text_postgres_cannot_hold_is_a_content_error_and_none_of_its_batch_is_stored(
    store,
):
    bad = DeliveryRequested.model_construct(**{**request("e2").model_dump(), "body": "a\x00"})
    with pytest.raises(Exception) as refused:
        await stored(store, request("e1"), bad)
    assert is_content_error(refused.value)
    assert await claim(store, at(3600)) == []


# --- AttemptLog -----------------------------------------------------------------------------


@dataclass
class Recording:
    store: DeliveryStore
    log: AttemptLog
    settle: Callable[[], Awaitable[None]]


@pytest.fixture
async def recording(pool_or_fake: asyncpg.Pool | None) -> AsyncIterator[Recording]:
    if pool_or_fake is None:
        fake = FakeDeliveryStore()

        async def nothing() -> None:
            pass

        yield Recording(fake, FakeAttemptLog(fake), nothing)
        return
    pool = pool_or_fake
    recorder = AttemptRecorder(pool, batch_size=50, clock=lambda: T0)

    async def written() -> None:
        assert await recorder.drain(timeout_s=10)

    writing = asyncio.create_task(recorder.run())
    yield Recording(PostgresDeliveryStore(pool), recorder, written)
    writing.cancel()
    await asyncio.gather(writing, return_exceptions=True)


def attempt_row(job: Job, number: int, status: str, next_at: datetime | None) -> AttemptRow:
    return AttemptRow(
        delivery_id=job.id,
        delivery_created_at=job.created_at,
        attempt=number,
        started_at=T0,
        duration_ms=5,
        status_code=500 if status != "success" else 200,
        error=None if status == "success" else "HTTP 500",
        response_body="no",
        status=status,
        next_attempt_at=next_at,
    )


async def test_a_recorded_final_attempt_ends_its_delivery(recording):
    [job] = await stored(recording.store, request("e1"))
    await recording.log.record(attempt_row(job, 1, "success", None))
    await recording.settle()
    assert await claim(recording.store, at(3600)) == []
    assert await recording.store.renew_lease(job, lease_until=at(90)) is None


async def test_a_recorded_retry_makes_its_delivery_due_at_the_next_attempt_unleased(recording):
    [job] = await stored(recording.store, request("e1"))
    await recording.log.record(attempt_row(job, 1, "pending", at(30)))
    await recording.settle()
    assert await claim(recording.store, at(29)) == []
    [again] = await claim(recording.store, at(30))
    assert (again.id, again.attempts) == (job.id, 1)


async def test_an_attempt_that_is_not_its_deliverys_next_is_not_recorded(recording):
    [job] = await stored(recording.store, request("e1"))
    # Another replica made attempt 1 too (its lease ran out), or one skips a number.
    for number, status, next_at in [
        (1, "pending", at(30)),
        (1, "success", None),
        (3, "success", None),
    ]:
        await recording.log.record(attempt_row(job, number, status, next_at))
        await recording.settle()
    [again] = await claim(recording.store, at(30))
    assert (again.id, again.attempts) == (job.id, 1)


# --- UpkeepStore ----------------------------------------------------------------------------

HOOK = str(uuid.UUID(int=7))


def created(minute: int, webhook: str = HOOK) -> DeliveryRequested:
    """A request for `webhook` created `minute` minutes after T0."""
    made = request(f"e{minute}", webhook=webhook)
    return made.model_copy(update={"created_at": at(60 * minute)})


@dataclass
class Upkept:
    recording: Recording
    upkeep: UpkeepStore

    async def stored(self, *requests: DeliveryRequested) -> list[Job]:
        return await stored(self.recording.store, *requests)


def ids_of(jobs: list[Job]) -> list[uuid.UUID]:
    return [job.id for job in jobs]


@pytest.fixture
def upkept(recording: Recording, pool_or_fake: asyncpg.Pool | None) -> Upkept:
    store = recording.store
    upkeep = store if pool_or_fake is None else PostgresUpkeep(pool_or_fake)
    return Upkept(recording, upkeep)  # type: ignore[arg-type]


async def test_a_held_delivery_is_out_of_every_claim_until_resumed_in_order_of_creation(upkept):
    store, upkeep = upkept.recording.store, upkept.upkeep
    jobs = await upkept.stored(created(2), created(0), created(1))
    ids = ids_of(jobs)
    await store.hold(jobs, now=T0)
    assert await claim(store, at(3600)) == []
    assert await upkeep.held_webhooks(after=None, limit=10) == [uuid.UUID(HOOK)]
    assert await upkeep.resume_held(uuid.UUID(HOOK), now=at(10), limit=2) == 2
    assert await claim(store, at(10)) == []  # due from a microsecond after
    first = [job.id for job in await claim(store, at(11))]
    assert first == [ids[1], ids[2]]  # created at minutes 0 and 1
    assert await upkeep.resume_held(uuid.UUID(HOOK), now=at(20), limit=2) == 1
    assert await upkeep.held_webhooks(after=None, limit=10) == []
    assert [job.id for job in await claim(store, at(21))] == [ids[0]]


async def test_webhooks_holding_deliveries_are_listed_by_id_after_a_cursor(upkept):
    webhooks = sorted(uuid.uuid4() for _ in range(3))
    jobs = await upkept.stored(*(created(0, webhook=str(w)) for w in webhooks))
    await upkept.recording.store.hold(jobs, now=T0)
    upkeep = upkept.upkeep
    assert await upkeep.held_webhooks(after=None, limit=2) == webhooks[:2]
    assert await upkeep.held_webhooks(after=webhooks[1], limit=2) == webhooks[2:]


async def test_held_deliveries_of_a_deleted_webhook_end_failed_and_only_theirs(upkept):
    store, upkeep = upkept.recording.store, upkept.upkeep
    jobs = await upkept.stored(created(0), created(1), created(2))
    ids = ids_of(jobs)
    await store.hold(jobs[:2], now=T0)
    await store.release(jobs[2:], due_at=at(5))
    assert await upkeep.fail_held(uuid.UUID(HOOK), reason="webhook deleted", now=T0, limit=10) == 2
    assert await upkeep.held_webhooks(after=None, limit=10) == []
    assert [job.id for job in await claim(store, at(3600))] == ids[2:]


def recover_order(first_minute: int, end_minute: int) -> RecoverRequested:
    return RecoverRequested(
        job_id=str(uuid.uuid4()),
        webhook_id=HOOK,
        organization_id=str(uuid.UUID(int=1)),
        since=at(60 * first_minute),
        until=at(60 * end_minute),
        requested_at=T0,
    )


async def failed_deliveries(upkept: Upkept, count: int) -> list[uuid.UUID]:
    jobs = await upkept.stored(*(created(minute) for minute in range(count)))
    await upkept.recording.store.stop(jobs, reason="HTTP 503", now=T0)
    return ids_of(jobs)


async def test_a_recovery_makes_its_windows_failed_deliveries_due_in_order_a_batch_at_a_time(
    upkept,
):
    store, upkeep = upkept.recording.store, upkept.upkeep
    ids = await failed_deliveries(upkept, 4)
    job = recover_order(1, 3)  # minutes 1 and 2
    for _ in range(2):  # a re-read order starts nothing new
        await store.store_requests([], [], now=T0, lease_until=T0 + LEASE, recover=[job])
    assert await upkeep.running_recoveries(limit=10) == [uuid.UUID(job.job_id)]
    async with upkeep.recovery_turn(uuid.UUID(job.job_id)) as turn:
        assert turn is not None
        async with upkeep.recovery_turn(uuid.UUID(job.job_id)) as other:
            assert other is None  # one turn at a time
        assert await turn.mark(limit=1, now=at(100)) == 1
        assert await turn.mark(limit=5, now=at(100)) == 1
        assert await turn.mark(limit=5, now=at(100)) == 0
        assert (turn.recovery.marked, turn.recovery.exhausted) == (2, True)
    assert [job.id for job in await claim(store, at(101))] == ids[1:3]


async def test_a_recovered_delivery_counts_as_done_once_attempted_and_a_finished_job_stops(upkept):
    store, upkeep, recording = upkept.recording.store, upkept.upkeep, upkept.recording
    await failed_deliveries(upkept, 2)
    job = recover_order(0, 10)
    await store.store_requests([], [], now=T0, lease_until=T0 + LEASE, recover=[job])
    async with upkeep.recovery_turn(uuid.UUID(job.job_id)) as turn:
        assert turn is not None and await turn.mark(limit=10, now=at(100)) == 2
    [sent, _] = await claim(store, at(101))
    await recording.log.record(attempt_row(sent, 1, "success", None))
    await recording.settle()
    async with upkeep.recovery_turn(uuid.UUID(job.job_id)) as turn:
        assert turn is not None
        settled = await turn.settle(now=at(102))
        assert (settled.marked, settled.done, settled.outstanding) == (2, 1, 1)
        assert (await turn.settle(now=at(103))).done == 1  # counted once
        await turn.finish("done", error=None, now=at(104))
    assert await upkeep.running_recoveries(limit=10) == []
    async with upkeep.recovery_turn(uuid.UUID(job.job_id)) as turn:
        assert turn is None


async def test_a_recovery_turn_that_raises_keeps_nothing(upkept):
    store, upkeep = upkept.recording.store, upkept.upkeep
    await failed_deliveries(upkept, 2)
    job = recover_order(0, 10)
    await store.store_requests([], [], now=T0, lease_until=T0 + LEASE, recover=[job])
    with pytest.raises(RuntimeError):
        async with upkeep.recovery_turn(uuid.UUID(job.job_id)) as turn:
            assert turn is not None and await turn.mark(limit=10, now=at(100)) == 2
            raise RuntimeError("crashed mid-turn")
    assert await claim(store, at(101)) == []
    async with upkeep.recovery_turn(uuid.UUID(job.job_id)) as turn:
        assert turn is not None and turn.recovery.marked == 0


# --- WebhookPoster --------------------------------------------------------------------------


@dataclass
class Endpoints:
    """Answers the test scripts; the poster to aim at them, and what they received."""

    poster: WebhookPoster
    answer: Callable[..., str]
    received: Callable[[], list[tuple[bytes, dict[str, str]]]]
    nobody: str  # a url where nothing listens


@dataclass
class _Server:
    base: str = ""
    answers: dict[str, tuple[int, dict[str, str], bytes]] = field(default_factory=dict)
    seen: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)

    async def handle(self, req: web.Request) -> web.Response:
        self.seen.append((await req.read(), dict(req.headers)))
        status, headers, body = self.answers[req.path]
        return web.Response(status=status, headers=headers, body=body)

    def answer(self, path: str, status: int, headers=None, body: bytes = b"") -> str:
        self.answers[path] = (status, headers or {}, body)
        return self.base + path


@pytest.fixture(params=KINDS)
async def endpoints(request: pytest.FixtureRequest) -> AsyncIterator[Endpoints]:
    nobody = f"http://127.0.0.1:{free_port()}/hook"
    if request.param == "fake":
        fake = FakePoster(body_limit=64)

        def answer(path: str, status: int, headers=None, body: bytes = b"") -> str:
            return fake.answer(f"http://127.0.0.1:1{path}", status, headers, body)

        def received() -> list[tuple[bytes, dict[str, str]]]:
            return [(post.body, post.headers) for post in fake.posts if post.url != nobody]

        yield Endpoints(fake, answer, received, nobody)
        return
    server = _Server()
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", server.handle)
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    server.base = str(test_server.make_url("")).rstrip("/")
    policy = AddressPolicy.build(allow_loopback=True, allowed_networks=[])
    try:
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            poster = Dispatcher(
                session, policy=policy, timeout_s=5, body_max_bytes=64, clock=lambda: T0
            )
            yield Endpoints(poster, server.answer, lambda: server.seen, nobody)
    finally:
        await test_server.close()


async def test_a_2xx_is_a_success_and_the_request_arrives_as_given(endpoints):
    url = endpoints.answer("/ok", 204)
    result = await endpoints.poster.post(url, b'{"a":1}', {"X-Webhook-Attempt": "2"})
    assert (result.outcome, result.status_code, result.error) == (Outcome.SUCCESS, 204, None)
    [(body, headers)] = endpoints.received()
    assert body == b'{"a":1}' and headers["X-Webhook-Attempt"] == "2"


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(500, Outcome.HTTP_ERROR), (404, Outcome.HTTP_ERROR), (410, Outcome.GONE)],
)
async def test_another_status_fails_with_it_and_keeps_the_body_up_to_the_cap(
    endpoints, status, outcome
):
    url = endpoints.answer("/no", status, body=b"x" * 100)
    result = await endpoints.poster.post(url, b"{}", {})
    assert (result.outcome, result.status_code) == (outcome, status)
    assert result.response_body == "x" * 64


async def test_a_retry_after_on_a_503_is_read(endpoints):
    url = endpoints.answer("/busy", 503, headers={"Retry-After": "120"})
    result = await endpoints.poster.post(url, b"{}", {})
    assert (result.outcome, result.retry_after_s) == (Outcome.HTTP_ERROR, 120.0)


async def test_a_redirect_is_not_followed(endpoints):
    url = endpoints.answer("/moved", 302, headers={"Location": "http://example.com/new"})
    result = await endpoints.poster.post(url, b"{}", {})
    assert (result.outcome, result.status_code) == (Outcome.HTTP_ERROR, 302)
    assert "redirect to http://example.com/new not followed" in (result.error or "")
    assert len(endpoints.received()) == 1


async def test_nobody_listening_is_a_network_error_without_a_status(endpoints):
    result = await endpoints.poster.post(endpoints.nobody, b"{}", {})
    assert (result.outcome, result.status_code) == (Outcome.NETWORK_ERROR, None)
    assert result.error


async def test_an_address_the_guard_refuses_is_blocked_without_a_request(endpoints):
    result = await endpoints.poster.post("http://169.254.169.254/latest", b"{}", {})
    assert result.outcome is Outcome.BLOCKED
    assert "refused by the SSRF guard" in (result.error or "")
    assert endpoints.received() == []


# --- TargetLookup ---------------------------------------------------------------------------


@dataclass
class Registered:
    targets: TargetLookup
    register: Callable[..., Awaitable[uuid.UUID]]


@pytest.fixture
def registered(pool_or_fake: asyncpg.Pool | None) -> Registered:
    if pool_or_fake is None:
        fake = FakeTargets()

        async def put(url: str, secret: str, *, enabled: bool, schedule) -> uuid.UUID:
            webhook_id = uuid.uuid4()
            fake.put(webhook_id, Target(url, secret, enabled, schedule))
            return webhook_id

        return Registered(fake, put)
    pool = pool_or_fake
    box = SecretsBox([TEST_SECRETS_KEY])

    async def insert(url: str, secret: str, *, enabled: bool, schedule) -> uuid.UUID:
        account, webhook_id = uuid.uuid4(), uuid.uuid4()
        await pool.execute("INSERT INTO registry.accounts (id, name) VALUES ($1, 'a')", account)
        await pool.execute(
            "INSERT INTO registry.webhooks (id, organization_id, url, secret_ciphertext,"
            " events, enabled, retry_schedule, created_at, updated_at)"
            " VALUES ($1, $2, $3, $4, '{participant.joined}', $5, $6, now(), now())",
            webhook_id,
            account,
            url,
            box.seal(secret),
            enabled,
            list(schedule) if schedule is not None else None,
        )
        return webhook_id

    return Registered(Targets(pool, box, ttl_s=60), insert)


async def test_an_unknown_webhook_has_no_target(registered):
    assert await registered.targets.get(uuid.uuid4()) is None


@pytest.mark.parametrize(("enabled", "schedule"), [(True, None), (False, (1.0, 60.0)), (True, ())])
async def test_a_webhook_has_its_url_opened_secret_state_and_schedule(
    registered, enabled, schedule
):
    webhook_id = await registered.register(
        "https://hooks.example.com/in", "whsec", enabled=enabled, schedule=schedule
    )
    target = await registered.targets.get(webhook_id)
    assert target == Target("https://hooks.example.com/in", "whsec", enabled, schedule)


async def test_a_webhook_marked_disabled_is_disabled_at_once(registered):
    webhook_id = await registered.register(
        "https://h.example.com", "s", enabled=True, schedule=None
    )
    await registered.targets.get(webhook_id)
    registered.targets.mark_disabled(webhook_id)
    target = await registered.targets.get(webhook_id)
    assert target is not None and not target.enabled


async def test_a_webhook_has_its_rotations_previous_secret_and_its_headers_opened(pool_or_fake):
    until = T0 + timedelta(hours=1)
    headers = {"Authorization": "Bearer t0k3n", "X-Tenant": "acme"}
    expected = Target(
        "https://hooks.example.com/in",
        "new",
        True,
        None,
        previous_secret=PreviousSecret("old", until=int(until.timestamp())),
        headers=tuple(headers.items()),
    )
    webhook_id = uuid.uuid4()
    if pool_or_fake is None:
        targets: TargetLookup = FakeTargets()
        targets.put(webhook_id, expected)
    else:
        pool, box = pool_or_fake, SecretsBox([TEST_SECRETS_KEY])
        account = uuid.uuid4()
        await pool.execute("INSERT INTO registry.accounts (id, name) VALUES ($1, 'a')", account)
        await pool.execute(
            "INSERT INTO registry.webhooks (id, organization_id, url, secret_ciphertext,"
            " previous_secret_ciphertext, previous_secret_until, headers_ciphertext, events,"
            " created_at, updated_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, '{participant.joined}', now(), now())",
            webhook_id,
            account,
            expected.url,
            box.seal("new"),
            box.seal("old"),
            until,
            seal_headers(box, headers),
        )
        targets = Targets(pool, box, ttl_s=60)
    assert await targets.get(webhook_id) == expected
