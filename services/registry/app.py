"""The one place that builds the registry: `create_app` wires the services, routes and
metrics of the HTTP API; `Registry` builds its pools and producer and runs it with the outbox
relay and the commands consumer beside it.

Two pools: the API's, whose requests leave no session state behind, so a released
connection is not reset (a round trip saved on every release, two a request), and the
upkeep's, with asyncpg's full reset, for what holds session state: the migration and
retention locks, and the relay, the sealing and the sweep beside them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version

import asyncpg
import structlog
from aiohttp import web
from aiokafka import AIOKafkaProducer
from prometheus_client import Gauge

from services.registry import outbox
from services.registry.accounts.repository import PostgresAccounts
from services.registry.accounts.routes import KeyRoutes
from services.registry.accounts.service import AccountService
from services.registry.accounts.usage import usage_recorded
from services.registry.audit.repository import PostgresAuditLog
from services.registry.audit.routes import AuditRoutes
from services.registry.audit.service import AuditService
from services.registry.auth import ApiLimits, Authorizer
from services.registry.background import running
from services.registry.code_check import deno_code_check
from services.registry.code_gate import CodeCheckGate
from services.registry.commands import commands_applied
from services.registry.console import Console
from services.registry.deliveries.repository import PostgresDeliveryLog
from services.registry.deliveries.routes import DeliveryRoutes
from services.registry.deliveries.service import DeliveryLogService
from services.registry.events.repository import PostgresEventLog
from services.registry.events.routes import EventRoutes
from services.registry.events.service import EventLogService
from services.registry.http import build_middlewares
from services.registry.jobs.repository import PostgresJobs
from services.registry.jobs.routes import JobRoutes
from services.registry.jobs.service import JobService
from services.registry.metrics import RegistryMetrics
from services.registry.openapi import build_openapi
from services.registry.outbox import OutboxRelay
from services.registry.portal.repository import PostgresPortalSessions
from services.registry.portal.routes import PortalRoutes
from services.registry.portal.service import PortalService
from services.registry.rate_limits import Buckets
from services.registry.retention import PLAN
from services.registry.sealing import seal_stored_secrets
from services.registry.settings import RegistrySettings
from services.registry.system_routes import SystemRoutes
from services.registry.webhooks.repository import PostgresEndedOverlaps, PostgresWebhooks
from services.registry.webhooks.routes import WebhookRoutes
from services.registry.webhooks.secret_overlaps import overlaps_ended
from services.registry.webhooks.service import WebhookService
from services.registry.workflows.repository import PostgresWorkflows
from services.registry.workflows.routes import WorkflowRoutes
from services.registry.workflows.service import CodeChecker, WorkflowService
from shared.db import create_pool, prepare_schema
from shared.kafka import Topics, ensure_topics, make_producer
from shared.lifecycle import run_until_signalled
from shared.retention import retention_loop
from shared.secrets_box import SecretsBox, SecretsKeyError, load_box

log = structlog.get_logger(__name__)

# Room for a body around the largest code once JSON-escaped: a control character is six
# bytes escaped (`\u0001`), the worst case; any other character at most three times its
# UTF-8 (`é` as `\u00e9`). The rest of a workflow or webhook body is a few KiB.
JSON_ESCAPE_FACTOR = 6
BODY_SLACK_BYTES = 64 * 1024


def max_body_bytes(code_max_bytes: int) -> int:
    return JSON_ESCAPE_FACTOR * code_max_bytes + BODY_SLACK_BYTES


RELAY = web.AppKey("relay", OutboxRelay)
WEBHOOKS = web.AppKey("webhooks", WebhookService)
WORKFLOWS = web.AppKey("workflows", WorkflowService)
ACCOUNTS = web.AppKey("accounts", AccountService)


def utcnow() -> datetime:
    return datetime.now(UTC)


# The upkeep pool's size: the relay, retention and the sweep hold one each at most.
UPKEEP_POOL_MAX = 3


@dataclass
class RegistryDeps:
    pool: asyncpg.Pool  # the API's
    producer: AIOKafkaProducer
    check_code: CodeChecker
    clock: Callable[[], datetime] = field(default=utcnow)
    # None: built from settings.secrets (ROOMHOOKS_SECRETS_KEY).
    box: SecretsBox | None = None
    # The relay's pool; None: the API's.
    upkeep_pool: asyncpg.Pool | None = None


def create_app(settings: RegistrySettings, deps: RegistryDeps) -> web.Application:
    s, pool, clock = settings, deps.pool, deps.clock
    metrics = RegistryMetrics.create()
    app = web.Application(
        middlewares=build_middlewares(metrics.requests, metrics.latency),
        client_max_size=max_body_bytes(s.workflow_code_max_bytes),
    )
    topics = Topics.from_settings(s.kafka)
    box = deps.box or load_box(s.secrets)
    checks = CodeCheckGate(
        deps.check_code, at_once=s.code_checks_at_once, queued=s.code_checks_queued
    )
    app[ACCOUNTS] = accounts = AccountService(PostgresAccounts(pool), clock=clock)
    app[WEBHOOKS] = webhooks = WebhookService(
        PostgresWebhooks(pool), topics, clock, box, quota=s.webhooks_per_account
    )
    # The log pages name the days a row can have (shared/partitions.py kept_span).
    days = s.postgres.retention_days
    app[WORKFLOWS] = workflows = WorkflowService(
        PostgresWorkflows(pool, retention_days=days, clock=clock),
        topics,
        clock,
        checks,
        quota=s.workflows_per_account,
        versions_kept=s.workflow_versions_kept,
    )
    app[RELAY] = relay = OutboxRelay(
        deps.upkeep_pool or pool,
        deps.producer,
        batch_size=s.outbox_batch_size,
        poll_interval_s=s.outbox_poll_interval_s,
        listen_dsn=s.postgres.url,
        published=metrics.published,
    )

    limits = ApiLimits.from_settings(s)
    portal = PortalService(PostgresPortalSessions(pool), clock=clock, public_url=s.public_base_url)
    auth = Authorizer(accounts, limits, portal)
    sends = Buckets(rate_per_s=s.webhook_sends_rate_per_s, burst=s.webhook_sends_burst)
    deliveries = DeliveryLogService(
        PostgresDeliveryLog(pool, retention_days=days, clock=clock), topics, clock
    )
    document = build_openapi(version=version("roomhooks"), page_size_max=s.page_size_max)
    readiness = postgres_and_relay(pool, relay, metrics.backlog)
    for routes in (
        WorkflowRoutes(
            auth, workflows, page_size_max=s.page_size_max, code_max_bytes=s.workflow_code_max_bytes
        ),
        DeliveryRoutes(auth, deliveries, page_size_max=s.page_size_max, sends=sends),
        JobRoutes(auth, JobService(PostgresJobs(pool), topics, clock)),
        EventRoutes(
            auth,
            EventLogService(PostgresEventLog(pool, retention_days=days, clock=clock)),
            page_size_max=s.page_size_max,
        ),
        WebhookRoutes(auth, webhooks, http_hosts=s.http_hosts, page_size_max=s.page_size_max),
        KeyRoutes(auth, accounts, page_size_max=s.page_size_max),
        PortalRoutes(auth, portal, limits),
        AuditRoutes(auth, AuditService(PostgresAuditLog(pool)), page_size_max=s.page_size_max),
        SystemRoutes(readiness, metrics.registry, document),
        Console(s.console_dir, portal_frame_ancestors=s.portal_frame_ancestors),
    ):
        routes.register(app)
    return app


def postgres_and_relay(
    pool: asyncpg.Pool, relay: OutboxRelay, backlog: Gauge
) -> Callable[[], Awaitable[dict[str, str]]]:
    """/readyz: Postgres answers (the outbox backlog is read and exported on the way) and
    the relay publishes."""

    async def readiness() -> dict[str, str]:
        checks = {"postgres": "ok", "outbox": "ok" if relay.healthy else "failing"}
        try:
            async with pool.acquire(timeout=2) as conn:
                backlog.set(await outbox.backlog(conn))
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            checks["postgres"] = type(exc).__name__
        return checks

    return readiness


class Registry:
    """The running registry. `start()` migrates, seals stored secrets, and starts the
    producer, the outbox relay, the commands consumer, the sweep of ended secret overlaps,
    retention (when it migrates on start) and the HTTP server; `stop()` stops taking
    requests, then stops the loops (the relay with one last pass) and closes."""

    def __init__(self, settings: RegistrySettings) -> None:
        self.settings = settings
        try:
            self.box = load_box(settings.secrets)
        except SecretsKeyError as exc:
            log.critical("registry.cannot_start", error=str(exc))
            raise SystemExit(1) from None
        self._stack = AsyncExitStack()

    async def start(self) -> None:
        s, stack = self.settings, self._stack
        upkeep = await create_pool(s.postgres, max_size=UPKEEP_POOL_MAX)
        stack.push_async_callback(upkeep.close)
        async with upkeep.acquire() as conn:
            await prepare_schema(
                conn,
                s.postgres,
                schema="registry",
                package="services.registry",
                plan=PLAN,
                production=s.runtime.production,
            )
        await seal_stored_secrets(upkeep, self.box)
        pool = await create_pool(s.postgres, keep_session=True)
        stack.push_async_callback(pool.close)
        await ensure_topics(s.kafka)
        producer = make_producer(s.kafka)
        await producer.start()
        stack.push_async_callback(producer.stop)

        deps = RegistryDeps(
            pool=pool,
            producer=producer,
            check_code=deno_code_check,
            box=self.box,
            upkeep_pool=upkeep,
        )
        app = create_app(s, deps)
        if s.should_republish_on_start:
            await app[WEBHOOKS].republish_all()
            await app[WORKFLOWS].republish_all()
        await stack.enter_async_context(app[RELAY].publishing())
        await stack.enter_async_context(commands_applied(s.kafka, app[WEBHOOKS]))
        await stack.enter_async_context(usage_recorded(app[ACCOUNTS].record_usage))
        overlaps, every_s = PostgresEndedOverlaps(upkeep), s.secret_overlap_sweep_s
        await stack.enter_async_context(overlaps_ended(overlaps, deps.clock, every_s=every_s))
        if s.postgres.migrate_on_start:  # the owner role; else the retention CronJob runs it
            retention = retention_loop(upkeep, PLAN, s.postgres)
            await stack.enter_async_context(running(retention, name="retention"))

        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        await web.TCPSite(runner, s.host, s.port).start()
        log.info("registry.listening", url=f"http://{s.host}:{s.port}")

    async def stop(self) -> None:
        log.info("registry.stopping")
        await self._stack.aclose()


async def run(settings: RegistrySettings) -> None:
    """Serve until SIGTERM or SIGINT; then stop taking requests, finish, and close."""
    await run_until_signalled(lambda: Registry(settings))
