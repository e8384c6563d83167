"""The alert rules and the Grafana dashboard name only metrics the services export (a renamed
metric would leave an alert that never fires and a panel that stays empty)."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from services.delivery.service import DeliveryMetrics
from services.fanout.metrics import FanoutMetrics
from services.registry.metrics import RegistryMetrics
from services.workflow_runner.service import RunnerMetrics
from shared.kafka.lag import service_metrics

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
SERIES_SUFFIXES = ("_bucket", "_count", "_sum")


def exported_names() -> set[str]:
    delivery, runner = service_metrics(), service_metrics()
    DeliveryMetrics(delivery)
    RunnerMetrics(runner)
    registries: list[CollectorRegistry] = [
        delivery,
        runner,
        FanoutMetrics.create().registry,
        RegistryMetrics.create().registry,
    ]
    text = "\n".join(generate_latest(r).decode() for r in registries)
    return set(re.findall(r"^# HELP (\w+)", text, flags=re.MULTILINE))


def named_in(path: Path) -> set[str]:
    return set(re.findall(r"\broomhooks_\w+", path.read_text()))


def base(name: str) -> str:
    return next((name.removesuffix(s) for s in SERIES_SUFFIXES if name.endswith(s)), name)


def test_every_metric_the_alert_rules_name_is_exported_by_a_service() -> None:
    names = {base(n) for n in named_in(MONITORING / "alerts.yml")}
    assert names, "the rules name no roomhooks metric"
    assert names - exported_names() == set()


def test_every_metric_the_dashboard_queries_is_exported_by_a_service() -> None:
    names = {base(n) for n in named_in(MONITORING / "grafana-dashboard.json")}
    assert len(names) > 10
    assert names - exported_names() == set()
