"""`python -m services.workflow_runner`: customer workflows run in the Deno sandbox."""

import uvloop

from services.workflow_runner.app import run
from services.workflow_runner.settings import RunnerSettings
from shared.logging import configure_logging


def main() -> None:
    settings = RunnerSettings()
    configure_logging(settings.runtime, service="workflow_runner")
    uvloop.run(run(settings))  # libuv's loop: the services are all network I/O


if __name__ == "__main__":
    main()
