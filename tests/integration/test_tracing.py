"""Tracing end to end, through the real broker and Postgres, services in-process: one event
makes one trace (the producer's span -> fanout -> each delivery request -> each attempt, and
the workflow run with its binding call and fetch); a producer's sampled flag does not force
sampling; a retry, claimed later from Postgres, continues the stored trace."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from services.delivery.app import Delivery
from services.delivery.settings import DeliverySettings
from services.fanout.app import Fanout
from services.fanout.settings import FanoutSettings
from services.workflow_runner.app import Runner
from services.workflow_runner.settings import RunnerSettings
from shared.events import build_event
from shared.kafka import JSON_HEADERS, dumps
from shared.tracing import TracingSettings, build_tracing, headers_with
from tests.integration.test_workflow_pipeline import Platform as WorkflowPlatform
from tests.support.polling import eventually
from tests.support.receiver import Receiver, Script
from tests.support.sandbox import NOTIFY_SLACK

pytestmark = pytest.mark.integration

ROOM = {"id": "c3003c93-60cf-4184-b85f-20be14d26dac", "name": "Design review"}
SLACK_PATH = "/services/YOUR/WEBHOOK/URL"


class Traced:
    """Registry, fanout, delivery and runner in-process, each with its own tracing into one
    in-memory exporter (as three services export to one collector)."""

    def __init__(self, registry, producer, topics, fanout, runner, receiver, exporter):
        self.registry, self.producer, self.topics = registry, producer, topics
        self.fanout, self.runner, self.receiver = fanout, runner, receiver
        self.exporter = exporter
        self.workflows = WorkflowPlatform(registry, producer, topics, fanout, runner)

    async def webhook(self, path: str, script: Script | None = None, **fields) -> dict:
        r, alice = self.registry, self.registry.alice
        url = self.receiver.script(path, script) if script else self.receiver.url(path)
        body = {"url": url, "events": ["session.started"], **fields}
        resp = await r.http.post(r.webhooks_url(alice), json=body, headers=alice.auth())
        assert resp.status == 201, await resp.text()
        webhook = (await resp.json())["data"]["webhook"]

        async def indexed():
            return self.fanout.index.get(webhook["id"]) is not None

        await eventually(indexed, timeout_s=15)
        return webhook

    async def publish(self, event: dict, traceparent: bytes | None) -> None:
        headers = [*JSON_HEADERS, *([("traceparent", traceparent)] if traceparent else [])]
        await self.producer.send_and_wait(
            self.topics.events, dumps(event), key=ROOM["id"].encode(), headers=headers
        )

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())


def session_started(org: str) -> dict:
    return build_event(
        event="session.started", organization_id=org, now=datetime.now(UTC), room=ROOM
    )


@contextlib.asynccontextmanager
async def traced_platform(
    registry, producer, topics, kafka_settings, postgres_settings, *, fanout_sampler: str
) -> AsyncIterator[Traced]:
    exporter = InMemorySpanExporter()
    receiver = Receiver()
    await receiver.start()
    relay = asyncio.create_task(registry.relay.run())
    fanout_tracing = build_tracing(
        TracingSettings(traces_sampler=fanout_sampler, traces_sampler_arg=0.0),
        service="fanout",
        untrusted_parents=True,
        exporter=exporter,
    )
    fanout = Fanout(
        FanoutSettings(kafka=kafka_settings, postgres=postgres_settings, health_port=0),
        tracing=fanout_tracing,
    )
    await fanout.start()
    serving = asyncio.create_task(fanout.run_until_stopped())
    follows = TracingSettings()  # parentbased_always_on: they follow fanout's decision
    delivery = Delivery(
        DeliverySettings(
            postgres=postgres_settings, kafka=kafka_settings, health_port=0,
            scheduler_interval_s=0.1,
        ),
        tracing=build_tracing(follows, service="delivery", exporter=exporter),
    )  # fmt: skip
    await delivery.start()
    runner = Runner(
        RunnerSettings(
            postgres=postgres_settings, kafka=kafka_settings, health_port=0, max_hosts=2,
            allow_loopback=False, allowed_networks=["127.0.0.2/32"],
        ),
        tracing=build_tracing(follows, service="workflow-runner", exporter=exporter),
    )  # fmt: skip
    await runner.start()
    try:
        yield Traced(registry, producer, topics, fanout, runner, receiver, exporter)
    finally:
        await runner.stop()
        await delivery.stop()
        fanout.stop()
        await serving
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay
        await receiver.stop()


def producer_span():
    """The room service's span, from its own tracer, sampled."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    span = provider.get_tracer("room-service").start_span("publish session.started")
    span.end()
    return span


def named(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


async def test_one_event_two_webhooks_and_a_workflow_make_one_trace(
    registry, producer, topics, kafka_settings, postgres_settings
):
    async with traced_platform(
        registry, producer, topics, kafka_settings, postgres_settings,
        fanout_sampler="parentbased_always_on",
    ) as platform:  # fmt: skip
        slack = Receiver(host="127.0.0.2")
        await slack.start()
        try:
            first = await platform.webhook("/first")
            second = await platform.webhook("/second")
            code = NOTIFY_SLACK.replace(
                "https://hooks.slack.com/services/YOUR/WEBHOOK/URL",
                slack.url(SLACK_PATH) + "?token=never-in-a-span",
            )
            workflow = await platform.workflows.workflow(
                registry.alice, "Notify Slack", ["session.started"], code
            )
            room_service = producer_span()
            [(_, traceparent)] = headers_with([], room_service)
            await platform.publish(session_started(registry.alice.id), traceparent)

            async def all_ended():
                spans = platform.spans()
                done = len(named(spans, "POST")) == 3 and named(spans, "workflow run")
                return spans if done else None

            spans = await eventually(all_ended, timeout_s=30)
        finally:
            await slack.stop()
    producer_context = room_service.get_span_context()
    # The registry's own events (the account's) are routed too, each its own trace, to nothing.
    others = [s for s in spans if s.context.trace_id != producer_context.trace_id]
    assert {s.name for s in others} <= {"fanout event"}
    assert all(s.attributes["roomhooks.delivery_requests"] == 0 for s in others)
    spans = [s for s in spans if s not in others]
    by_id = {s.context.span_id: s for s in spans}

    def parent_of(span: ReadableSpan) -> ReadableSpan | None:
        return by_id.get(span.parent.span_id) if span.parent else None

    [event_span] = named(spans, "fanout event")
    assert event_span.parent.span_id == producer_context.span_id
    assert event_span.kind is SpanKind.CONSUMER
    assert event_span.attributes["roomhooks.delivery_requests"] == 2
    assert event_span.attributes["roomhooks.run_requests"] == 1
    requests = named(spans, "delivery request")
    assert sorted(s.attributes["roomhooks.webhook_id"] for s in requests) == sorted(
        [first["id"], second["id"]]
    )
    assert all(parent_of(s) is event_span for s in requests)
    posts = [s for s in named(spans, "POST") if s.kind is SpanKind.CLIENT]
    attempts = [s for s in posts if "roomhooks.delivery_id" in s.attributes]
    assert len(attempts) == 2
    for attempt in attempts:
        request = parent_of(attempt)
        assert request in requests
        assert (
            attempt.attributes["roomhooks.webhook_id"] == request.attributes["roomhooks.webhook_id"]
        )
        assert attempt.attributes["http.response.status_code"] == 200
        assert attempt.attributes["url.full"].startswith(platform.receiver.base_url)
        assert attempt.end_time > attempt.start_time
    [run] = named(spans, "workflow run")
    assert parent_of(run) is event_span
    assert run.attributes["roomhooks.workflow_id"] == workflow["id"]
    assert run.attributes["roomhooks.status"] == "success"
    [binding] = named(spans, "binding room.get")
    assert parent_of(binding) is run
    [fetch] = [s for s in posts if s not in attempts]
    assert parent_of(fetch) is run
    assert fetch.attributes["url.full"] == slack.url(SLACK_PATH)  # the query left out
    assert fetch.attributes["http.response.status_code"] == 200


async def test_a_producers_sampled_flag_does_not_force_sampling(
    registry, producer, topics, kafka_settings, postgres_settings, pool
):
    async with traced_platform(
        registry, producer, topics, kafka_settings, postgres_settings,
        fanout_sampler="parentbased_traceidratio",  # ratio 0: our sampler says no
    ) as platform:  # fmt: skip
        webhook = await platform.webhook("/unsampled")
        room_service = producer_span()
        assert room_service.get_span_context().trace_flags.sampled
        [(_, traceparent)] = headers_with([], room_service)
        assert int(traceparent.rsplit(b"-", 1)[1], 16) & 1  # it says: sampled
        await platform.publish(session_started(registry.alice.id), traceparent)

        # Recorded once its attempt's span (had there been one) was exported.
        async def succeeded():
            status = await pool.fetchval(
                "SELECT status FROM delivery.deliveries WHERE webhook_id = $1", webhook["id"]
            )
            return status == "success"

        await eventually(succeeded, timeout_s=30)
        assert len(platform.receiver.received["/unsampled"]) == 1
        assert platform.spans() == []


async def test_a_malformed_traceparent_starts_a_new_trace_and_the_event_is_delivered(
    registry, producer, topics, kafka_settings, postgres_settings
):
    async with traced_platform(
        registry, producer, topics, kafka_settings, postgres_settings,
        fanout_sampler="parentbased_always_on",
    ) as platform:  # fmt: skip
        await platform.webhook("/malformed")
        await platform.publish(session_started(registry.alice.id), b"00-not-a-trace-01")

        async def attempted():
            return named(platform.spans(), "POST") or None

        [attempt] = await eventually(attempted, timeout_s=30)
    events = named(platform.spans(), "fanout event")
    # Every event is a root here (the registry's own ones have no traceparent at all)...
    assert all(s.parent is None for s in events)
    # ...and the attempt is of the trace of the one event routed to the webhook.
    [event_span] = [s for s in events if s.attributes.get("roomhooks.delivery_requests")]
    assert attempt.context.trace_id == event_span.context.trace_id
    assert len(platform.receiver.received["/malformed"]) == 1


async def test_a_retry_claimed_later_continues_the_stored_trace(
    registry, producer, topics, kafka_settings, postgres_settings, pool
):
    async with traced_platform(
        registry, producer, topics, kafka_settings, postgres_settings,
        fanout_sampler="parentbased_always_on",
    ) as platform:  # fmt: skip
        webhook = await platform.webhook("/flaky", Script(statuses=[503, 200]), retrySchedule=[1])
        await platform.publish(session_started(registry.alice.id), None)

        async def both_attempted():
            posts = named(platform.spans(), "POST")
            return posts if len(posts) == 2 else None

        first, retry = sorted(await eventually(both_attempted, timeout_s=30),
                              key=lambda s: s.attributes["roomhooks.attempt"])  # fmt: skip
    stored = await pool.fetchval(
        "SELECT traceparent FROM delivery.deliveries WHERE webhook_id = $1", webhook["id"]
    )
    [request] = named(platform.spans(), "delivery request")
    context = request.context
    assert stored == f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
    assert first.attributes["http.response.status_code"] == 503
    assert retry.attributes["http.response.status_code"] == 200
    assert first.context.trace_id == retry.context.trace_id == request.context.trace_id
    assert first.parent.span_id == retry.parent.span_id == request.context.span_id
