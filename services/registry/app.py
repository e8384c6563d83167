"""The one place that builds the registry's pools, producer, relay and HTTP server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version

import asyncpg
import structlog
from aiohttp import web
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from services.registry import repository
from services.registry.auth import ApiLimits, Authorizer
from services.registry.code_check import deno_code_check
from services.registry.code_gate import CodeCheckGate
from services.registry.commands import consume_commands
from services.registry.delivery_log import DeliveryLog
from services.registry.delivery_routes import DeliveryRoutes
from services.registry.http import build_middlewares
from services.registry.openapi import build_openapi
from services.registry.outbox import OutboxRelay
from services.registry.rate_limits import Buckets
from services.registry.routes import WebhookRoutes, event_types, health_routes
from services.registry.sealing import seal_stored_secrets
from services.registry.service import AccountService, WebhookService
from services.registry.settings import RegistrySettings
from services.registry.workflow_routes import WorkflowRoutes
from services.registry.workflows import CodeChecker, WorkflowService
from shared.db import apply_migrations, create_pool
from shared.kafka import Topics, ensure_topics, make_consumer, make_producer
from shared.lifecycle import stop_requested
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


@dataclass
class RegistryDeps:
    pool: asyncpg.Pool
    producer: AIOKafkaProducer
    check_code: CodeChecker
    clock: Callable[[], datetime] = field(default=utcnow)
    # None: built from settings.secrets (ROOMHOOKS_SECRETS_KEY).
    box: SecretsBox | None = None


def create_app(settings: RegistrySettings, deps: RegistryDeps) -> web.Application:
    metrics = CollectorRegistry()
    requests = Counter(
        "roomhooks_http_requests_total",
        "HTTP requests answered, by route and status.",
        ["method", "route", "status"],
        registry=metrics,
    )
    latency = Histogram(
        "roomhooks_http_request_duration_seconds",
        "HTTP request latency.",
        ["method", "route"],
        registry=metrics,
    )
    published = Counter(
        "roomhooks_outbox_published_total",
        "Outbox rows the broker acknowledged.",
        registry=metrics,
    )
    backlog = Gauge("roomhooks_outbox_backlog", "Outbox rows not yet published.", registry=metrics)

    app = web.Application(
        middlewares=build_middlewares(requests, latency),
        client_max_size=max_body_bytes(settings.workflow_code_max_bytes),
    )
    topics = Topics.from_settings(settings.kafka)
    accounts = AccountService(deps.pool)
    box = deps.box or load_box(settings.secrets)
    webhooks = WebhookService(
        deps.pool, topics, deps.clock, box, quota=settings.webhooks_per_account
    )
    relay = OutboxRelay(
        deps.pool,
        deps.producer,
        batch_size=settings.outbox_batch_size,
        poll_interval_s=settings.outbox_poll_interval_s,
        listen_dsn=settings.postgres.url,
        published=published,
    )
    checks = CodeCheckGate(
        deps.check_code,
        at_once=settings.code_checks_at_once,
        queued=settings.code_checks_queued,
    )
    workflows = WorkflowService(
        deps.pool, topics, deps.clock, checks, quota=settings.workflows_per_account
    )
    app[RELAY] = relay
    app[WEBHOOKS] = webhooks
    app[WORKFLOWS] = workflows
    app[ACCOUNTS] = accounts

    auth = Authorizer(
        accounts,
        ApiLimits(
            keys=Buckets(rate_per_s=settings.api_rate_per_s, burst=settings.api_burst),
            unknown_keys=Buckets(
                rate_per_s=settings.unknown_key_rate_per_s, burst=settings.unknown_key_burst
            ),
        ),
    )
    WorkflowRoutes(
        auth,
        workflows,
        page_size_max=settings.page_size_max,
        code_max_bytes=settings.workflow_code_max_bytes,
    ).register(app)
    DeliveryRoutes(
        auth,
        DeliveryLog(deps.pool, topics, deps.clock),
        page_size_max=settings.page_size_max,
        sends=Buckets(
            rate_per_s=settings.webhook_sends_rate_per_s, burst=settings.webhook_sends_burst
        ),
    ).register(app)
    WebhookRoutes(
        auth,
        webhooks,
        http_hosts=settings.http_hosts,
        page_size_max=settings.page_size_max,
    ).register(app)
    app.router.add_get("/v1/event-types", event_types)

    async def readiness() -> dict[str, str]:
        checks = {"postgres": "ok", "outbox": "ok" if relay.healthy else "failing"}
        try:
            async with deps.pool.acquire(timeout=2) as conn:
                backlog.set(await repository.outbox_backlog(conn))
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            checks["postgres"] = type(exc).__name__
        return checks

    health_routes(app, readiness)

    document = build_openapi(version=version("roomhooks"), page_size_max=settings.page_size_max)

    async def openapi(_request: web.Request) -> web.Response:
        return web.json_response(document)

    async def prometheus(_request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(metrics), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/metrics", prometheus)
    return app


async def run(settings: RegistrySettings) -> None:
    """Serve until SIGTERM or SIGINT; then stop taking requests, finish, and close."""
    stop = stop_requested()

    try:
        box = load_box(settings.secrets)
    except SecretsKeyError as exc:
        log.critical("registry.cannot_start", error=str(exc))
        raise SystemExit(1) from None

    async with AsyncExitStack() as stack:
        pool = await create_pool(settings.postgres)
        stack.push_async_callback(pool.close)
        async with pool.acquire() as conn:
            await apply_migrations(conn, schema="registry", package="services.registry")
        await seal_stored_secrets(pool, box)
        await ensure_topics(settings.kafka)
        producer = make_producer(settings.kafka)
        await producer.start()
        stack.push_async_callback(producer.stop)

        app = create_app(
            settings,
            RegistryDeps(pool=pool, producer=producer, check_code=deno_code_check, box=box),
        )
        if settings.should_republish_on_start:
            await app[WEBHOOKS].republish_all()
            await app[WORKFLOWS].republish_all()
        relay_task = asyncio.create_task(app[RELAY].run(), name="outbox-relay")
        topics = Topics.from_settings(settings.kafka)
        commands = make_consumer(
            settings.kafka,
            topics.registry_commands,
            group_id=topics.group("registry"),
            background=True,
        )
        await commands.start()
        stack.push_async_callback(commands.stop)
        commands_task = asyncio.create_task(
            consume_commands(commands, app[WEBHOOKS]), name="registry-commands"
        )

        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        log.info("registry.listening", url=f"http://{settings.host}:{settings.port}")

        await stop.wait()
        log.info("registry.stopping")
        for task in (relay_task, commands_task):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # One last pass so changes committed just before the stop are published now.
        with contextlib.suppress(Exception):
            await app[RELAY].publish_pending()
