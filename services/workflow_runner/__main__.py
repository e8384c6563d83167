"""`python -m services.workflow_runner`: customer workflows run in the Deno sandbox."""

import asyncio

from services.workflow_runner.app import run
from services.workflow_runner.settings import RunnerSettings
from shared.logging import configure_logging


def main() -> None:
    settings = RunnerSettings()
    configure_logging(settings.runtime, service="workflow_runner")
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
