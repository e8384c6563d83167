"""The configuration reference (docs/configuration.md) names every setting the code reads."""

from __future__ import annotations

import re
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


# Where operators read or set variables: the documents, the deploy files, the compose files.
ROOT = Path(__file__).resolve().parents[2]
NAMED_IN = ("*.md", "deploy/**/*.md", "docs/*.md", "services/**/README.md", "deploy/**/*.yaml")
NAMED_IN += ("deploy/**/*.yml", "deploy/*.example", "docker-compose.yml", "Makefile")
VARIABLE = re.compile(r"\bROOMHOOKS_[A-Z0-9_]*[A-Z0-9]\b")


def variables_named(text: str) -> set[str]:
    return set(VARIABLE.findall(text))


def read_by_code() -> set[str]:
    """Every ROOMHOOKS_ variable a setting defines or a Python file names (the CLI's, the
    tests' own), this file's misspelt example aside."""
    names = {name for settings in SETTINGS for name in env_names(settings)}
    for package in ("devtool", "services", "shared", "tests"):
        for path in (ROOT / package).rglob("*.py"):
            if path != Path(__file__).resolve():
                names |= variables_named(path.read_text(encoding="utf-8"))
    return names


def test_every_variable_the_documents_name_is_read_by_the_code():
    # A misspelt variable is ignored without a word (the settings ignore what they do not
    # know): an operator following the document would set nothing.
    known = read_by_code()
    unread = sorted(
        f"{path.relative_to(ROOT)}: {name}"
        for pattern in NAMED_IN
        for path in ROOT.glob(pattern)
        if "node_modules" not in path.parts
        for name in variables_named(path.read_text(encoding="utf-8")) - known
    )
    assert unread == []


def test_a_misspelt_variable_is_told_from_a_read_one():
    known = read_by_code()
    assert "ROOMHOOKS_WORKFLOWS_MAX_HOSTS" in known
    assert variables_named("set `ROOMHOOKS_WORKFLOWS_HOSTS` (2)") - known == {
        "ROOMHOOKS_WORKFLOWS_HOSTS"
    }
