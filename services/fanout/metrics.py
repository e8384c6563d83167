"""Prometheus metrics of one fanout instance (its own registry, so tests can run several)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from shared.failures import PoisonCounter
from shared.kafka.lag import service_metrics

if TYPE_CHECKING:
    from services.fanout.index import SubscriptionIndex, Subscriptions


@dataclass(frozen=True)
class FanoutMetrics:
    registry: CollectorRegistry
    events_consumed: Counter
    requests_emitted: Counter
    runs_emitted: Counter
    dlq_entries: Counter
    poison: PoisonCounter
    registry_records: Counter
    index_webhooks: Gauge
    index_workflows: Gauge
    batch_seconds: Histogram
    loop_failures: Counter

    @classmethod
    def create(cls) -> FanoutMetrics:
        registry = service_metrics()
        return cls(
            registry=registry,
            events_consumed=Counter(
                "roomhooks_fanout_events_consumed_total",
                "Messages read from the events topic and committed.",
                registry=registry,
            ),
            requests_emitted=Counter(
                "roomhooks_fanout_delivery_requests_total",
                "Delivery requests the broker acknowledged.",
                registry=registry,
            ),
            runs_emitted=Counter(
                "roomhooks_fanout_workflow_run_requests_total",
                "Workflow run requests the broker acknowledged.",
                registry=registry,
            ),
            dlq_entries=Counter(
                "roomhooks_fanout_dlq_total",
                "Events sent to the DLQ, by kind of problem.",
                ["reason"],
                registry=registry,
            ),
            # Every DLQ entry is a poison input: the same kinds, under the name every service
            # shares (`roomhooks_poison_inputs_total{service="fanout"}`).
            poison=PoisonCounter(registry, service="fanout"),
            registry_records=Counter(
                "roomhooks_fanout_registry_records_total",
                "Registry records read, by outcome (applied, stale, removed, ignored, invalid).",
                ["outcome"],
                registry=registry,
            ),
            index_webhooks=Gauge(
                "roomhooks_fanout_index_webhooks",
                "Webhooks held in the index, by state.",
                ["state"],
                registry=registry,
            ),
            index_workflows=Gauge(
                "roomhooks_fanout_index_workflows",
                "Workflows held in the index, by state.",
                ["state"],
                registry=registry,
            ),
            batch_seconds=Histogram(
                "roomhooks_fanout_batch_duration_seconds",
                "Time from a fetched batch to its committed offsets.",
                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
                registry=registry,
            ),
            loop_failures=Counter(
                "roomhooks_fanout_loop_failures_total",
                "Unexpected errors a loop survived (it backs off and retries).",
                ["loop"],
                registry=registry,
            ),
        )

    def set_index_sizes(self, indexes: Subscriptions) -> None:
        """Publish how many webhooks and workflows the indexes hold, enabled or not."""
        _set_sizes(self.index_webhooks, indexes.webhooks)
        _set_sizes(self.index_workflows, indexes.workflows)


def _set_sizes(gauge: Gauge, index: SubscriptionIndex) -> None:
    gauge.labels("enabled").set(index.enabled_count)
    gauge.labels("disabled").set(len(index) - index.enabled_count)
