"""Tracing with OpenTelemetry: the one place that builds a service's tracer.

Off by default. With `OTEL_EXPORTER_OTLP_ENDPOINT` set, a service exports its spans over OTLP
(`OTEL_EXPORTER_OTLP_PROTOCOL`: `http/protobuf`, the default, or `grpc`), sampled as
`OTEL_TRACES_SAMPLER` (and `_ARG`) say, as `roomhooks-<service>`. Off, `Tracing.enabled` is
False and the services skip every span before making it: the hot paths build no SDK object
and the records they produce carry no extra header.

A trace follows one event across the services by a W3C `traceparent` header on each Kafka
record (the event, its delivery and run requests) and, for a delivery, by the same text
stored with it, so a retry claimed later or by another replica continues the trace.

A producer's `traceparent` is untrusted (`untrusted_parents=True`, fanout): its trace is
continued (the producer's span is the parent, one trace from the room service on), but the
sampling is ours. Our root sampler decides, on a trace id we draw, never on the producer's
sampled flag nor its trace id (a ratio sampler reads the trace id: a crafted one could
otherwise pick itself). The records fanout writes are ours, so the services after it follow
fanout's decision. A malformed `traceparent` is no parent at all: a new trace.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Literal

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, Span, SpanKind, Tracer, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from yarl import URL

TRACEPARENT = "traceparent"
_PROPAGATOR = TraceContextTextMapPropagator()
# A traceparent is 55 characters; anything much longer is not one (and is not parsed).
_MAX_TRACEPARENT = 128

SamplerName = Literal[
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
]


class TracingSettings(BaseSettings):
    """The standard OpenTelemetry variables a service reads (the exporter also reads its own
    `OTEL_EXPORTER_OTLP_HEADERS`, `_CERTIFICATE`, `_TIMEOUT`, as the SDK documents them)."""

    model_config = SettingsConfigDict(env_prefix="OTEL_", extra="ignore")

    # None: tracing off (no SDK on any path).
    exporter_otlp_endpoint: str | None = None
    exporter_otlp_protocol: Literal["http/protobuf", "grpc"] = "http/protobuf"
    traces_sampler: SamplerName = "parentbased_always_on"
    # The ratio of `*traceidratio` (1.0 when unset).
    traces_sampler_arg: float | None = Field(default=None, ge=0.0, le=1.0)


class Tracing:
    """A service's tracer, or none (`enabled` False: callers make no span at all)."""

    def __init__(
        self, tracer: Tracer | None = None, provider: TracerProvider | None = None
    ) -> None:
        self.enabled = tracer is not None
        self.tracer: Tracer = tracer if tracer is not None else trace.NoOpTracer()
        self._provider = provider

    def start(
        self,
        name: str,
        *,
        parent: Context | None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: dict[str, str | int] | None = None,
    ) -> Span:
        """A span under `parent` (None: a new trace); the caller ends it."""
        return self.tracer.start_span(name, context=parent or Context(), kind=kind,
                                      attributes=attributes)  # fmt: skip

    def shutdown(self) -> None:
        """Flush what is buffered and stop exporting (a service's stop)."""
        if self._provider is not None:
            self._provider.shutdown()


NO_TRACING = Tracing()


def parent_from_headers(headers: Sequence[tuple[str, bytes]] | None) -> Context | None:
    """The context a Kafka record's `traceparent` header names, or None (absent, malformed)."""
    for name, value in headers or ():
        if name == TRACEPARENT and value is not None:
            return parent_from_text(value.decode("ascii", "replace"))
    return None


def parent_from_text(text: str | None) -> Context | None:
    """The context of a stored or received `traceparent`, or None when it is not a valid one."""
    if not text or len(text) > _MAX_TRACEPARENT:
        return None
    try:
        context = _PROPAGATOR.extract({TRACEPARENT: text})
    except Exception:  # noqa: BLE001 - untrusted text: whatever it is, it is no parent
        return None
    if not trace.get_current_span(context).get_span_context().is_valid:
        return None
    return context


def traceparent_of(span: Span) -> str | None:
    """The W3C `traceparent` of `span` (as a child's parent), or None for an invalid span."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
    return carrier.get(TRACEPARENT)


def headers_with(headers: Iterable[tuple[str, bytes]], span: Span) -> list[tuple[str, bytes]]:
    """`headers` and the `traceparent` of `span` (its records' spans become its children)."""
    traceparent = traceparent_of(span)
    extra = [(TRACEPARENT, traceparent.encode("ascii"))] if traceparent else []
    return [*headers, *extra]


def url_without_query(url: str) -> str:
    """A URL for a span: no query or fragment (they may hold tokens) and no credentials."""
    try:
        parsed = URL(url)
        return str(parsed.with_query(None).with_fragment(None).with_user(None))
    except Exception:  # noqa: BLE001 - a span attribute; an unparsable URL is cut at '?'
        return url.split("?", 1)[0].split("#", 1)[0]


def build_tracing(
    settings: TracingSettings,
    *,
    service: str,
    untrusted_parents: bool = False,
    exporter: SpanExporter | None = None,
) -> Tracing:
    """The service's tracing: NO_TRACING without an endpoint (and no `exporter`, which tests
    pass: it then gets every span as it ends)."""
    if settings.exporter_otlp_endpoint is None and exporter is None:
        return NO_TRACING
    provider = TracerProvider(
        sampler=build_sampler(settings, untrusted_parents=untrusted_parents),
        resource=Resource.create({"service.name": f"roomhooks-{service}"}),
    )
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        provider.add_span_processor(BatchSpanProcessor(_otlp_exporter(settings)))
    return Tracing(provider.get_tracer(f"roomhooks.{service}"), provider)


def _otlp_exporter(settings: TracingSettings) -> SpanExporter:
    endpoint = settings.exporter_otlp_endpoint or ""
    if settings.exporter_otlp_protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=endpoint)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpSpanExporter,
    )

    # The variable names the collector; traces go to its /v1/traces (the OTLP convention).
    return HttpSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")


def build_sampler(settings: TracingSettings, *, untrusted_parents: bool) -> Sampler:
    """The sampler `OTEL_TRACES_SAMPLER` names; with `untrusted_parents`, a remote parent
    (a producer's traceparent) never decides: our root sampler does, on a trace id we draw."""
    name = settings.traces_sampler
    base = name.removeprefix("parentbased_")
    ratio = 1.0 if settings.traces_sampler_arg is None else settings.traces_sampler_arg
    fixed = {"always_on": ALWAYS_ON, "always_off": ALWAYS_OFF}
    root = fixed[base] if base in fixed else TraceIdRatioBased(ratio)
    if untrusted_parents:
        ours = OwnDraw(root)
        return ParentBased(root, remote_parent_sampled=ours, remote_parent_not_sampled=ours)
    return ParentBased(root) if name.startswith("parentbased_") else root


class OwnDraw(Sampler):
    """`root`'s decision as for a new trace whose id we drew: whatever a remote parent says
    (its sampled flag, its trace id), a span is as likely to be sampled as any root span."""

    def __init__(self, root: Sampler) -> None:
        self._root = root

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        drawn = random.getrandbits(128) or 1
        return self._root.should_sample(None, drawn, name, kind, attributes, links)

    def get_description(self) -> str:
        return f"OwnDraw{{{self._root.get_description()}}}"
