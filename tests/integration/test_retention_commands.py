"""`python -m services.<name> retention`, the command the CronJobs and the compose retention
services run as the owner: on a migrated database each service's exits 0 and logs its run."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.devstack import clean_environ

pytestmark = pytest.mark.integration

# Service -> the schema its retention keeps.
SCHEMAS = {
    "registry": "registry",
    "fanout": "events",
    "delivery": "delivery",
    "workflow_runner": "workflow",
}


def retention_command(service: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {**clean_environ(), "DATABASE_URL": database_url, "ROOMHOOKS_LOG_FORMAT": "json"}
    return subprocess.run(
        [sys.executable, "-m", f"services.{service}", "retention"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def log_events(output: str) -> list[dict]:
    """The JSON log lines of `output`, in order."""
    events = []
    for line in output.splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return [event for event in events if isinstance(event, dict)]


@pytest.mark.parametrize(("service", "schema"), SCHEMAS.items(), ids=list(SCHEMAS))
async def test_each_services_retention_command_runs_once_and_logs_it(database_url, service, schema):
    done = retention_command(service, database_url)
    said = done.stdout + done.stderr
    assert done.returncode == 0, said
    assert "Traceback" not in said
    runs = [event for event in log_events(said) if event.get("event") == "retention.done"]
    assert [run["schema"] for run in runs] == [schema], said
