"""Each consumer's lag per partition, as a Prometheus gauge its own service exports.

The high-water mark comes from the consumer's own fetch answers (`highwater`), not from a
ListOffsets request: the dev broker answers `end_offsets` wrongly, and asking costs a round
trip per scrape. So an operator needs no Kafka exporter to see how far each group is behind.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping

from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

METRIC = "roomhooks_consumer_lag"
# A consumer without a group (a watcher reading a topic whole) is labelled with this.
NO_GROUP = "none"
# How often one consumer reads its positions again (each read is local, but not free).
REPORT_EVERY_S = 1.0


def partition_lags(
    highwater: Mapping[TopicPartition, int | None], positions: Mapping[TopicPartition, int]
) -> dict[TopicPartition, int]:
    """Records between a partition's next offset to read and its high-water mark; a partition
    whose fetches have not yet reported a high-water mark is left out (unknown, not zero)."""
    lags: dict[TopicPartition, int] = {}
    for tp, position in positions.items():
        mark = highwater.get(tp)
        if mark is not None:
            lags[tp] = max(mark - position, 0)
    return lags


class ConsumerLag(Collector):
    """The latest lag of every consumer of this process, by (group, topic, partition).

    A consumer replaces its whole set on each report, so a partition it lost in a rebalance
    stops being exported by it (another replica exports it then)."""

    def __init__(self) -> None:
        self._by_consumer: dict[int, tuple[str, dict[TopicPartition, int]]] = {}

    def report(self, consumer_id: int, group: str | None, lags: Mapping[TopicPartition, int]):
        self._by_consumer[consumer_id] = (group or NO_GROUP, dict(lags))

    def forget(self, consumer_id: int) -> None:
        self._by_consumer.pop(consumer_id, None)

    def samples(self) -> Iterable[tuple[str, str, int, int]]:
        for group, lags in list(self._by_consumer.values()):
            for tp, lag in lags.items():
                yield group, tp.topic, tp.partition, lag

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            METRIC,
            "Records this process's consumer has yet to read, per partition "
            "(high-water mark from its fetches minus its position)",
            labels=["group", "topic", "partition"],
        )
        totals: dict[tuple[str, str, str], int] = {}
        for group, topic, partition, lag in self.samples():
            key = (group, topic, str(partition))
            totals[key] = totals.get(key, 0) + lag
        for labels, lag in sorted(totals.items()):
            family.add_metric(list(labels), lag)
        yield family


# One per process: every consumer `make_consumer` builds reports here, and each service adds
# it to the registry its /metrics serves.
CONSUMER_LAG = ConsumerLag()


class LagClock:
    """Whether a consumer is due to report again."""

    def __init__(self, every_s: float = REPORT_EVERY_S) -> None:
        self._every_s = every_s
        self._next = 0.0

    def due(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if now < self._next:
            return False
        self._next = now + self._every_s
        return True


def service_metrics() -> CollectorRegistry:
    """A service's own metrics registry, holding its consumers' lag from the start."""
    registry = CollectorRegistry()
    registry.register(CONSUMER_LAG)
    return registry
