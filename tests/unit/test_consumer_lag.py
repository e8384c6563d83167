"""Consumer lag as exported: per partition, unknown left out, a lost partition dropped."""

from __future__ import annotations

from aiokafka import TopicPartition
from prometheus_client import generate_latest

from shared.kafka.lag import ConsumerLag, LagClock, partition_lags, service_metrics

A0, A1 = TopicPartition("a", 0), TopicPartition("a", 1)


def test_lag_is_the_high_water_mark_minus_the_position_and_never_negative() -> None:
    assert partition_lags({A0: 120, A1: 5}, {A0: 100, A1: 7}) == {A0: 20, A1: 0}


def test_a_partition_without_a_high_water_mark_yet_is_left_out_not_zero() -> None:
    assert partition_lags({A0: None, A1: 9}, {A0: 0, A1: 4}) == {A1: 5}


def test_a_report_replaces_the_consumers_partitions_so_a_lost_one_is_no_longer_exported() -> None:
    lag = ConsumerLag()
    lag.report(1, "g", {A0: 3, A1: 4})
    lag.report(1, "g", {A1: 2})
    assert sorted(lag.samples()) == [("g", "a", 1, 2)]


def test_two_consumers_of_a_group_in_one_process_add_up_and_a_stopped_one_is_forgotten() -> None:
    lag = ConsumerLag()
    lag.report(1, "g", {A0: 3})
    lag.report(2, "g", {A0: 4})
    lag.report(3, None, {A1: 1})
    family = next(iter(lag.collect()))
    values = {tuple(s.labels.values()): s.value for s in family.samples}
    assert values == {("g", "a", "0"): 7, ("none", "a", "1"): 1}
    lag.forget(2)
    assert sorted(lag.samples()) == [("g", "a", 0, 3), ("none", "a", 1, 1)]


def test_a_consumer_reports_again_only_once_its_interval_has_passed() -> None:
    clock = LagClock(every_s=1.0)
    assert [clock.due(t) for t in (10.0, 10.5, 11.0, 11.2)] == [True, False, True, False]


def test_every_service_registry_exports_the_lag_gauge() -> None:
    text = generate_latest(service_metrics()).decode()
    assert "# TYPE roomhooks_consumer_lag gauge" in text
