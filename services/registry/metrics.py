"""The registry's Prometheus metrics, in a registry of its own (one per app)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from shared.kafka.lag import service_metrics


@dataclass(frozen=True)
class RegistryMetrics:
    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    published: Counter
    backlog: Gauge

    @classmethod
    def create(cls) -> RegistryMetrics:
        registry = service_metrics()
        return cls(
            registry=registry,
            requests=Counter(
                "roomhooks_http_requests_total",
                "HTTP requests answered, by route and status.",
                ["method", "route", "status"],
                registry=registry,
            ),
            latency=Histogram(
                "roomhooks_http_request_duration_seconds",
                "HTTP request latency.",
                ["method", "route"],
                registry=registry,
            ),
            published=Counter(
                "roomhooks_outbox_published_total",
                "Outbox rows the broker acknowledged.",
                registry=registry,
            ),
            backlog=Gauge(
                "roomhooks_outbox_backlog", "Outbox rows not yet published.", registry=registry
            ),
        )
