"""The configuration reference (docs/configuration.md) names every setting the code reads."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from devtool.devstack import DevSettings
from services.delivery.settings import DeliverySettings
from services.fanout.settings import FanoutSettings
from services.registry.settings import RegistrySettings
from services.workflow_runner.settings import RunnerSettings
from shared.settings import KafkaSettings, PostgresSettings, RuntimeSettings, SecretsSettings
from shared.tracing import TracingSettings

REFERENCE = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
SETTINGS = [
    RuntimeSettings,
    SecretsSettings,
    PostgresSettings,
    KafkaSettings,
    RegistrySettings,
    FanoutSettings,
    DeliverySettings,
    RunnerSettings,
    TracingSettings,
    DevSettings,
]


def env_names(settings: type[BaseSettings]) -> list[str]:
    prefix = settings.model_config.get("env_prefix", "")
    names = []
    for name, field in settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseSettings):
            continue  # nested: documented under its own prefix
        alias = field.validation_alias
        names.append(alias if isinstance(alias, str) else (prefix + name).upper())
    return names


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: s.__name__)
def test_every_setting_is_in_the_configuration_reference(settings):
    missing = [name for name in env_names(settings) if f"| `{name}` |" not in REFERENCE]
    assert missing == []
