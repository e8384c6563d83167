"""The attempt recorder and the request consumer on real Postgres: a row Postgres refuses for
its content is written cleaned without holding back its batch; an outage is waited out
without marking anyone poison, and readiness says so meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import aiohttp
import asyncpg
import pytest
from prometheus_client import CollectorRegistry
from yarl import URL

from services.delivery import repository
from services.delivery.recorder import AttemptRecorder
from services.delivery.rows import AttemptRow
from shared.failures import PoisonCounter
from shared.messages import DeliveryRequested, delivery_id_for
from shared.settings import PostgresSettings
from tests.support.deliveries import create_webhook, request_deliveries, running_delivery
from tests.support.polling import eventually
from tests.support.services import free_port

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


async def pending_deliveries(pool: asyncpg.Pool, n: int) -> list[uuid.UUID]:
    webhook, organization = str(uuid.uuid4()), str(uuid.uuid4())
    requests = [
        DeliveryRequested(
            delivery_id=delivery_id_for(webhook, f"e{i}"),
            webhook_id=webhook,
            organization_id=organization,
            event_id=f"e{i}",
            event="participant.joined",
            body="{}",
            created_at=NOW,
        )
        for i in range(n)
    ]
    async with pool.acquire() as conn:
        jobs = await repository.insert_requested(conn, requests, now=NOW, lease_until=NOW)
    return [job.id for job in jobs]


def attempt(delivery_id: uuid.UUID, *, error: str | None = None, body: str = "ok") -> AttemptRow:
    return AttemptRow(
        delivery_id=delivery_id,
        delivery_created_at=NOW,  # every delivery here is created at NOW
        attempt=1,
        started_at=NOW,
        duration_ms=3,
        status_code=500,
        error=error or "HTTP 500 Internal Server Error",
        response_body=body,
        status="failed",
        next_attempt_at=None,
    )


@contextlib.asynccontextmanager
async def running(recorder: AttemptRecorder) -> AsyncIterator[None]:
    task = asyncio.create_task(recorder.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def recorded(pool: asyncpg.Pool) -> dict[uuid.UUID, asyncpg.Record]:
    rows = await pool.fetch("SELECT * FROM delivery.delivery_attempts")
    return {row["delivery_id"]: row for row in rows}


def poison_count(registry: CollectorRegistry) -> float:
    value = registry.get_sample_value(
        "roomhooks_poison_inputs_total", {"service": "delivery", "kind": "attempt_row"}
    )
    return value or 0.0


async def test_a_row_postgres_refuses_is_written_cleaned_and_its_batch_goes_in(pool):
    ids = await pending_deliveries(pool, 6)
    metrics = CollectorRegistry()
    recorder = AttemptRecorder(
        pool, batch_size=10, clock=utcnow, poison=PoisonCounter(metrics, service="delivery")
    )
    rows = [attempt(i) for i in ids]
    rows[1] = attempt(ids[1], body="boom\x00after")  # Postgres text takes no NUL
    rows[4] = attempt(ids[4], error="lone \ud800 surrogate")  # nor a lone surrogate
    for row in rows:  # queued before the loop runs: one batch
        await recorder.record(row)
    async with running(recorder):
        assert await recorder.drain(timeout_s=15)

    stored = await recorded(pool)
    assert set(stored) == set(ids)
    assert stored[ids[1]]["response_body"] == "boom\\u0000after"
    assert stored[ids[4]]["error"] == "lone \\ud800 surrogate"
    assert stored[ids[0]]["response_body"] == "ok"
    statuses = await pool.fetch("SELECT status, attempts FROM delivery.deliveries")
    assert {(r["status"], r["attempts"]) for r in statuses} == {("failed", 1)}
    assert poison_count(metrics) == 2
    assert recorder.check() == "ok"


class PostgresLink:
    """A TCP relay to Postgres that a test can cut (an outage), freeze (a server that stops
    answering) and restore."""

    def __init__(self, url: str) -> None:
        self._upstream = URL(url)
        self.up = True
        self.flowing = asyncio.Event()
        self.flowing.set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    def url(self) -> str:
        return str(self._upstream.with_host("127.0.0.1").with_port(self.port))

    async def __aenter__(self) -> PostgresLink:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cut()
        assert self._server is not None
        self._server.close()

    def cut(self) -> None:
        self.up = False
        for writer in list(self._writers):
            writer.transport.abort()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.transport.abort()
            return
        up_reader, up_writer = await asyncio.open_connection(
            self._upstream.host, self._upstream.port or 5432
        )
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while chunk := await src.read(65536):
                    await self.flowing.wait()
                    dst.write(chunk)
                    await dst.drain()
            dst.transport.abort()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            self._writers -= {writer, up_writer}


async def test_an_outage_is_waited_out_without_marking_good_rows_poison(pool, database_url):
    ids = await pending_deliveries(pool, 3)
    metrics = CollectorRegistry()
    async with PostgresLink(database_url) as link:
        linked = await asyncpg.create_pool(dsn=link.url(), min_size=0, max_size=2)
        recorder = AttemptRecorder(
            linked,
            batch_size=10,
            clock=utcnow,
            poison=PoisonCounter(metrics, service="delivery"),
            retry_limit=2,
        )
        try:
            link.cut()
            for delivery_id in ids:
                await recorder.record(attempt(delivery_id, body="kept as it was"))
            async with running(recorder):

                async def red() -> str:
                    reason = recorder.check()
                    return reason if reason != "ok" else ""

                reason = await eventually(red, timeout_s=20)
                assert reason.startswith("attempt recorder write failed 3 times in a row")
                assert await recorded(pool) == {}
                link.up = True
                assert await recorder.drain(timeout_s=20)
        finally:
            await linked.close()

    stored = await recorded(pool)
    assert set(stored) == set(ids)
    assert {row["response_body"] for row in stored.values()} == {"kept as it was"}
    assert poison_count(metrics) == 0
    assert recorder.check() == "ok"


async def test_a_backlog_that_does_not_shrink_turns_readiness_red(pool, database_url):
    ids = await pending_deliveries(pool, 1)
    async with PostgresLink(database_url) as link:
        linked = await asyncpg.create_pool(dsn=link.url(), min_size=0, max_size=2)
        recorder = AttemptRecorder(
            linked, batch_size=10, clock=utcnow, stall_s=0.5, retry_limit=1000
        )
        try:
            link.cut()
            await recorder.record(attempt(ids[0]))
            assert recorder.check() == "ok"  # a backlog, not yet a stalled one
            async with running(recorder):

                async def red() -> str:
                    reason = recorder.check()
                    return reason if reason != "ok" else ""

                reason = await eventually(red, timeout_s=10)
                assert reason.startswith("attempt recorder backlog has held 1+ items")
                link.up = True
                assert await recorder.drain(timeout_s=20)
                assert recorder.check() == "ok"
        finally:
            await linked.close()


@contextlib.asynccontextmanager
async def delivery_through(
    link: PostgresLink, kafka_settings, **overrides
) -> AsyncIterator[Callable[[], Awaitable[dict[str, str]]]]:
    """The delivery service on Postgres through `link`, ready; yields its /readyz checks."""
    port = free_port()
    postgres = PostgresSettings(url=link.url(), pool_min_size=0, pool_max_size=5)
    async with (
        running_delivery(postgres, kafka_settings, health_port=port, **overrides),
        aiohttp.ClientSession() as http,
    ):

        async def checks() -> dict[str, str]:
            async with http.get(f"http://127.0.0.1:{port}/readyz") as resp:
                return (await resp.json())["checks"]

        await eventually(lambda: _all_ok(checks), timeout_s=20)
        yield checks


async def _red(checks, name: str) -> str:
    """Wait until the check `name` is not "ok"; returns its reason."""

    async def reason() -> str:
        value = (await checks())[name]
        return value if value != "ok" else ""

    return await eventually(reason, timeout_s=30, interval_s=0.2)


async def _all_ok(checks) -> bool:
    return all(value == "ok" for value in (await checks()).values())


async def test_readiness_names_the_request_consumer_failing_through_an_outage_then_recovers(
    database_url, kafka_settings, registry, producer, topics, pool, receiver
):
    webhook = await create_webhook(registry, receiver.url("/after-outage"))
    async with (
        PostgresLink(database_url) as link,
        delivery_through(link, kafka_settings, retry_limit=2) as checks,
    ):
        try:
            link.cut()
            [delivery_id] = await request_deliveries(
                producer, topics.deliveries, webhook, ["during-outage"]
            )
            reason = await _red(checks, "consuming")
            assert reason.startswith("request consumer failed 3 times in a row")
            link.up = True
            await eventually(lambda: _all_ok(checks), timeout_s=30, interval_s=0.2)
        finally:
            link.up = True
    row = await pool.fetchrow(
        "SELECT status FROM delivery.deliveries WHERE id = $1", uuid.UUID(delivery_id)
    )
    assert row is not None and row["status"] == "success"


async def test_readiness_says_when_the_request_consumer_has_not_fetched_for_a_while(
    database_url, kafka_settings, registry, producer, topics, receiver
):
    webhook = await create_webhook(registry, receiver.url("/after-freeze"))
    async with (
        PostgresLink(database_url) as link,
        delivery_through(link, kafka_settings, fetch_stall_s=1) as checks,
    ):
        try:
            link.flowing.clear()  # Postgres stops answering: storing a request hangs
            await request_deliveries(producer, topics.deliveries, webhook, ["frozen"])
            reason = await _red(checks, "fetching")
            assert reason.startswith("request consumer has not fetched for")
            link.flowing.set()
            await eventually(lambda: _all_ok(checks), timeout_s=30, interval_s=0.2)
        finally:
            link.flowing.set()
