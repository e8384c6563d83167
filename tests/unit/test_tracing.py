"""Building tracing: off without an endpoint, W3C traceparent in and out, and a producer's
traceparent that can never decide our sampling."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, Decision, SamplingResult

from shared.tracing import (
    NO_TRACING,
    OwnDraw,
    TracingSettings,
    build_tracing,
    headers_with,
    parent_from_headers,
    parent_from_text,
    traceparent_of,
    url_without_query,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PRODUCER = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def span_context(context):
    return trace.get_current_span(context).get_span_context()


def test_tracing_is_off_without_an_endpoint():
    assert build_tracing(TracingSettings(), service="fanout") is NO_TRACING
    assert not NO_TRACING.enabled


def test_a_valid_traceparent_names_its_trace_and_span():
    parent = span_context(
        parent_from_headers([("content-type", b"x"), ("traceparent", PRODUCER.encode())])
    )
    assert (f"{parent.trace_id:032x}", f"{parent.span_id:016x}") == (TRACE_ID, "00f067aa0ba902b7")
    assert parent.is_remote


def test_a_malformed_traceparent_is_no_parent():
    for text in [
        "",
        "garbage",
        f"00-{'0' * 32}-00f067aa0ba902b7-01",  # an all-zero trace id
        f"00-{TRACE_ID}-{'0' * 16}-01",
        f"ff-{TRACE_ID}-00f067aa0ba902b7-01",  # version ff is forbidden
        PRODUCER + "-" + "x" * 500,
        "\x00" * 55,
    ]:
        assert parent_from_text(text) is None, text
    assert parent_from_headers([("traceparent", b"\xff\xfe not ascii")]) is None
    assert parent_from_headers(None) is None


def test_a_span_goes_on_a_record_as_a_traceparent_of_the_same_trace():
    exporter = InMemorySpanExporter()
    tracing = build_tracing(TracingSettings(), service="fanout", exporter=exporter)
    span = tracing.start("fanout event", parent=parent_from_text(PRODUCER))
    headers = headers_with([("content-type", b"application/json")], span)
    span.end()
    [(_, _), (name, value)] = headers
    assert name == "traceparent"
    assert value.decode() == traceparent_of(span)
    child = span_context(parent_from_headers(headers))
    assert f"{child.trace_id:032x}" == TRACE_ID
    assert child.span_id == span.get_span_context().span_id


def test_a_producers_sampled_flag_does_not_turn_sampling_on():
    exporter = InMemorySpanExporter()
    never = TracingSettings(traces_sampler="parentbased_traceidratio", traces_sampler_arg=0.0)
    tracing = build_tracing(never, service="fanout", untrusted_parents=True, exporter=exporter)
    span = tracing.start("fanout event", parent=parent_from_text(PRODUCER))
    span.end()
    assert not span.get_span_context().trace_flags.sampled
    assert exporter.get_finished_spans() == ()
    # The trace is still the producer's, so a sampled run of it would join theirs.
    assert f"{span.get_span_context().trace_id:032x}" == TRACE_ID


def test_a_trusted_parent_is_followed_and_our_own_children_follow_us():
    exporter = InMemorySpanExporter()
    never = TracingSettings(traces_sampler="parentbased_always_off")
    tracing = build_tracing(never, service="delivery", exporter=exporter)
    span = tracing.start("delivery request", parent=parent_from_text(PRODUCER))
    span.end()
    assert span.get_span_context().trace_flags.sampled  # fanout sampled it: we follow


def test_the_untrusted_sampler_decides_on_a_trace_id_of_its_own():
    seen = []

    class Recording(type(ALWAYS_OFF)):
        def should_sample(self, parent_context, trace_id, *args, **kwargs):
            seen.append((parent_context, trace_id))
            return SamplingResult(Decision.DROP)

    sampler = OwnDraw(Recording(Decision.DROP))
    for _ in range(3):
        sampler.should_sample(parent_from_text(PRODUCER), int(TRACE_ID, 16), "fanout event")
    assert [parent for parent, _ in seen] == [None, None, None]
    assert int(TRACE_ID, 16) not in [trace_id for _, trace_id in seen]


def test_a_span_url_has_no_query_fragment_or_credentials():
    assert url_without_query("https://u:p@hooks.example.com/in?token=abc#x") == (
        "https://hooks.example.com/in"
    )
    assert url_without_query("http://[::1") in ("http://[::1",)
