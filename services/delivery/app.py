"""The one place that builds the delivery service's pool, consumers, producer and HTTP client."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from importlib.metadata import version
from typing import TypeVar
from uuid import UUID

import aiohttp
import asyncpg
import structlog
from aiohttp.abc import AbstractResolver
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.delivery.consumer import RequestConsumer
from services.delivery.dispatcher import Dispatcher, endpoint_session
from services.delivery.health_store import PostgresStaleWebhooks
from services.delivery.lanes import Lanes
from services.delivery.recorder import AttemptRecorder
from services.delivery.recoveries import PostgresUpkeep
from services.delivery.repository import PostgresDeliveryStore
from services.delivery.retention import PLAN
from services.delivery.scheduler import keep_up, schedule_retries, watch_registry
from services.delivery.service import DeliveryMetrics, DeliveryService
from services.delivery.settings import DeliverySettings
from services.delivery.targets import Targets
from services.delivery.upkeep import AutoDisable, Upkeep
from shared.db import create_pool, postgres_check, prepare_schema
from shared.failures import PoisonCounter
from shared.guarded_resolver import GuardedResolver
from shared.health import start_health_server
from shared.kafka import (
    JSON_HEADERS,
    Topics,
    broker_check,
    dumps,
    ensure_topics,
    make_consumer,
    make_producer,
    stop_quietly,
)
from shared.kafka.lag import service_metrics
from shared.lifecycle import run_until_signalled
from shared.messages import DisableWebhook
from shared.readiness import RetryWatch
from shared.retention import retention_loop
from shared.secrets_box import SecretsKeyError, load_box
from shared.ssrf import AddressPolicy
from shared.tracing import NO_TRACING, Tracing, build_tracing

log = structlog.get_logger(__name__)

_Client = TypeVar("_Client", AIOKafkaProducer, AIOKafkaConsumer)

# The most of the shutdown grace period kept back from in-flight attempts (see `_Deadline`).
_SHUTDOWN_RESERVE_MAX_S = 3.0


def utcnow() -> datetime:
    return datetime.now(UTC)


class Delivery:
    """The running service. `start()` builds and starts everything, `stop()` drains it."""

    def __init__(
        self,
        settings: DeliverySettings,
        *,
        clock: Callable[[], datetime] = utcnow,
        resolver: AbstractResolver | None = None,
        tracing: Tracing | None = None,
    ):
        """`tracing` None: built from `settings.tracing` (off without an endpoint)."""
        self.settings = settings
        self._tracing = tracing
        # The DNS under the SSRF guard; None: the system's (tests give a table of names).
        self._resolver = resolver
        # Opens webhook secrets; SecretsKeyError (no usable key) stops the start here.
        self.box = load_box(settings.secrets)
        self.topics = Topics.from_settings(settings.kafka)
        self.metrics_registry = service_metrics()
        self._clock = clock
        self._stack = AsyncExitStack()
        self._tasks: list[asyncio.Task[None]] = []
        self._fetching: list[asyncio.Task[None]] = []  # the loops that fetch or claim work
        self._stopping = asyncio.Event()
        self.service: DeliveryService | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self.poison = PoisonCounter(self.metrics_registry, service="delivery")
        # The request consumer's loop, built in start(); it watches its own fetching.
        self.requests: RequestConsumer | None = None
        # /readyz: a retry scheduler, an upkeep loop that keeps failing.
        self._claim_retries = RetryWatch("retry scheduler", settings.retry_limit)
        self._upkeep_retries = RetryWatch("upkeep", settings.retry_limit)

    async def start(self) -> None:
        """Build every part, each closed by `stop()` in reverse order; start the loops."""
        s = self.settings
        if self._tracing is None:
            self._tracing = build_tracing(s.tracing, service="delivery")
            self._stack.callback(self._tracing.shutdown)
        self._pool = await self._open_postgres()
        await ensure_topics(s.kafka, self.topics)
        producer = await self._started("producer", make_producer(s.kafka))
        lanes = Lanes(
            max_in_flight=s.max_in_flight,
            per_webhook_concurrency=s.per_webhook_concurrency,
            per_webhook_backlog=s.per_webhook_backlog,
            max_admitted=s.max_in_flight * 8,
        )
        self._recorder = AttemptRecorder(
            self._pool,
            batch_size=s.record_batch,
            clock=self._clock,
            poison=self.poison,
            stall_s=s.recorder_stall_s,
            retry_limit=s.retry_limit,
        )
        self.targets = Targets(self._pool, self.box, ttl_s=s.webhook_cache_ttl_s)
        self.service = self._build_service(lanes, producer)
        self._recorder.on_ordered_ended = self.service.wake_scheduler.set
        self._consumer = await self._started(
            "consumer",
            make_consumer(
                s.kafka,
                self.topics.deliveries,
                group_id=self.topics.group("delivery"),
                max_poll_records=s.fetch_max_records,
            ),
        )
        self.requests = RequestConsumer(
            self._consumer,
            self.service,
            lanes,
            producer=producer,
            dlq_topic=self.topics.deliveries_dlq,
            poison=self.poison,
            stopping=self._stopping,
            retry_limit=s.retry_limit,
            fetch_stall_s=s.fetch_stall_s,
            tracing=self._tracing,
        )
        watcher = await self._started(
            "registry_watcher", make_consumer(s.kafka, group_id=None, background=True)
        )
        runner = await start_health_server(
            self.readiness, self.metrics_registry, host=s.health_host, port=s.health_port
        )
        if runner is not None:
            self._stack.push_async_callback(runner.cleanup)
        self._start_loops(watcher)
        log.info("delivery.started", group=self.topics.group("delivery"))

    async def _open_postgres(self) -> asyncpg.Pool:
        """The pool, closed last; the delivery schema migrated, with its day partitions. When
        this service holds the owner role (ROOMHOOKS_MIGRATE_ON_START), it runs retention
        too; otherwise the operator runs `python -m services.delivery retention`."""
        pool: asyncpg.Pool = await create_pool(self.settings.postgres)
        self._stack.push_async_callback(pool.close)
        async with pool.acquire() as conn:
            await prepare_schema(
                conn,
                self.settings.postgres,
                schema="delivery",
                package="services.delivery",
                plan=PLAN,
                production=self.settings.runtime.production,
            )
        if self.settings.postgres.migrate_on_start:
            task = asyncio.create_task(
                retention_loop(pool, PLAN, self.settings.postgres), name="retention"
            )
            self._stack.push_async_callback(_cancelled, task)  # before the pool closes
        return pool

    async def _started(self, name: str, client: _Client) -> _Client:
        """`client` started, and stopped when the service closes."""
        await client.start()
        self._stack.push_async_callback(stop_quietly, name, client.stop)
        return client

    def _build_service(self, lanes: Lanes, producer: AIOKafkaProducer) -> DeliveryService:
        """The service over Postgres, the guarded HTTP client, and the registry's commands."""
        s = self.settings
        policy = AddressPolicy.build(
            allow_loopback=s.loopback_allowed, allowed_networks=s.allowed_networks
        )
        connector = aiohttp.TCPConnector(
            resolver=GuardedResolver(policy, self._resolver),
            limit=s.max_in_flight,
            limit_per_host=0,
        )
        session = endpoint_session(connector)
        self._stack.push_async_callback(session.close)

        async def disable(order: DisableWebhook) -> None:
            await producer.send_and_wait(
                self.topics.registry_commands,
                dumps(order.model_dump(mode="json")),
                key=order.webhook_id.encode(),
                headers=JSON_HEADERS,
            )

        self._send_disable = disable  # auto-disable's orders go out the same way
        return DeliveryService(
            store=PostgresDeliveryStore(self._pool),
            dispatcher=Dispatcher(
                session,
                policy=policy,
                timeout_s=s.timeout_s,
                body_max_bytes=s.response_body_max_bytes,
                clock=self._clock,
            ),
            targets=self.targets,
            lanes=lanes,
            recorder=self._recorder,
            disable=disable,
            settings=s,
            clock=self._clock,
            metrics=DeliveryMetrics(self.metrics_registry),
            user_agent=f"roomhooks/{version('roomhooks')}",
            tracing=self._tracing or NO_TRACING,
        )

    def _start_loops(self, watcher: AIOKafkaConsumer) -> None:
        assert self.service is not None and self.requests is not None
        upkeep = Upkeep(
            store=PostgresUpkeep(self._pool),
            targets=self.targets,
            clock=self._clock,
            batch=self.settings.upkeep_batch,
            wake=self.service.wake_upkeep,
            due=self.service.wake_scheduler,
            auto_disable=AutoDisable(
                store=PostgresStaleWebhooks(self._pool),
                disable=self._send_disable,
                clock=self._clock,
                disable_after_s=self.settings.disable_after_s,
                batch=self.settings.upkeep_batch,
            ),
        )
        self._fetching = [
            asyncio.create_task(self.requests.run(), name="consume"),
            asyncio.create_task(
                schedule_retries(
                    self.service,
                    stopping=self._stopping,
                    retries=self._claim_retries,
                    claim_batch=self.settings.claim_batch,
                    interval_s=self.settings.scheduler_interval_s,
                ),
                name="scheduler",
            ),
            asyncio.create_task(
                keep_up(
                    upkeep,
                    stopping=self._stopping,
                    retries=self._upkeep_retries,
                    interval_s=self.settings.upkeep_interval_s,
                ),
                name="upkeep",
            ),
        ]
        self._tasks = [
            asyncio.create_task(self._recorder.run(), name="recorder"),
            *self._fetching,
            asyncio.create_task(
                watch_registry(watcher, self.topics.registry, self.targets, upkeep.wake.set),
                name="registry-watch",
            ),
        ]

    async def readiness(self) -> dict[str, str]:
        """/readyz: each loop's watch, the broker and Postgres; "stopping" once stopping."""
        consumer = self._consumer
        if self._stopping.is_set():
            return {"consumer": "stopping"}
        # A loop that ended while not stopping is a bug: say so rather than look ready.
        ended = [task.get_name() for task in self._tasks if task.done()]
        assigned = bool(consumer and consumer.assignment())
        now = time.monotonic()
        requests = self.requests
        return {
            "loops": f"ended: {', '.join(ended)}" if ended else "ok",
            "consumer": "ok" if assigned else "waiting",
            "fetching": requests.fetching(now=now, assigned=assigned) if requests else "ok",
            "consuming": requests.retries.check() if requests else "ok",
            "claiming": self._claim_retries.check(),
            "upkeep": self._upkeep_retries.check(),
            "recorder": self._recorder.check(),
            "broker": await broker_check(consumer, [self.topics.deliveries])
            if consumer
            else "waiting",
            "postgres": await postgres_check(self._pool),
        }

    async def stop(self) -> None:
        """Graceful shutdown within `shutdown_grace_s` (SIGTERM; Kubernetes then waits
        terminationGracePeriodSeconds before it kills).

        Stop fetching and claiming; every fetched request is already stored and its offset
        committed (see `RequestConsumer.consume_batch`). Start no new attempt; let running
        attempts finish until the grace period nearly ends. Release the rest (admitted but not
        started, and running past the deadline) so another replica or the next start attempts
        them; write every recorded attempt; close the clients (leaving the consumer group).
        """
        grace = self.settings.shutdown_grace_s
        deadline = _Deadline(grace)
        service = self.service
        self._stopping.set()
        if service is not None:
            service.start_draining()
            service.wake_upkeep.set()  # its loop sees `stopping` now, not after its interval
        log.info("delivery.stopping", grace_s=grace, in_flight=service.in_flight if service else 0)
        for task in self._fetching:
            # Each loop sees the flag within a fetch (500 ms); past that it is cancelled,
            # which rewinds an unstored batch (nothing committed, read again later).
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout=min(2.0, deadline.left()))
        log.info("delivery.fetching_stopped", offsets="committed for every stored request")
        if service is not None:
            await self._finish_in_flight(service, deadline)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:  # the exit is promised within the grace period, even with a server gone quiet
            await asyncio.wait_for(self._stack.aclose(), timeout=max(1.0, deadline.left()))
        except TimeoutError:
            log.warning("delivery.close_timed_out", grace_s=grace)
        log.info("delivery.stopped", seconds=deadline.elapsed(), grace_s=grace)

    async def _finish_in_flight(self, service: DeliveryService, deadline: _Deadline) -> None:
        """Let running attempts end, release the rest, write every recorded attempt: each
        step within the deadline, less the reserve kept for the steps after it."""
        reserve = deadline.reserve
        unfinished = await service.finish_in_flight(timeout_s=deadline.left(reserve))
        released: list[UUID] = []
        try:
            released = await asyncio.wait_for(
                service.release_in_flight(), timeout=max(0.5, deadline.left(reserve / 3))
            )
        except Exception as exc:  # noqa: BLE001 - their leases run out instead
            log.warning("delivery.release_failed", unfinished=unfinished, error=repr(exc))
        log.info(
            "delivery.in_flight_done",
            unfinished=unfinished,
            released=len(released),
            seconds=deadline.elapsed(),
        )
        if not await self._recorder.drain(timeout_s=max(0.5, deadline.left(reserve / 3))):
            # Postgres is away: these attempts are repeated once their leases run out.
            log.warning("delivery.attempts_unrecorded", seconds=deadline.elapsed())


async def _cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class _Deadline:
    """The shutdown's grace period, from now: what is left of it, what has passed."""

    def __init__(self, grace_s: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._started = self._loop.time()
        self._deadline = self._started + grace_s
        # Of the grace period, the part kept back from in-flight attempts for releasing the
        # unfinished ones, writing the recorded attempts and closing the clients (a fifth, at
        # most 3 s); a third of that is for closing the clients alone.
        self.reserve = min(_SHUTDOWN_RESERVE_MAX_S, grace_s / 5)

    def left(self, keep: float = 0.0) -> float:
        """Seconds to the deadline, less `keep` for the steps after."""
        return max(0.0, self._deadline - keep - self._loop.time())

    def elapsed(self) -> float:
        return round(self._loop.time() - self._started, 3)


async def run(settings: DeliverySettings) -> None:
    """Serve until SIGTERM or SIGINT; without a usable secrets key, exit 1 before starting."""

    def build() -> Delivery:
        try:
            return Delivery(settings)
        except SecretsKeyError as exc:
            log.critical("delivery.cannot_start", error=str(exc))
            raise SystemExit(1) from None

    await run_until_signalled(build)
