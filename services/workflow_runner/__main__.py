"""`python -m services.workflow_runner`: customer workflows run in the Deno sandbox.

`python -m services.workflow_runner healthcheck` asks its /healthz instead (the container's check);
`python -m services.workflow_runner migrate` and `retention` run as the owner role
(shared/owner_commands.py).
"""

import sys

from services.workflow_runner.settings import RunnerSettings
from shared.healthcheck import probe
from shared.logging import configure_logging
from shared.owner_commands import OWNER_COMMANDS, run_owner_command


def main() -> None:
    settings = RunnerSettings()
    if sys.argv[1:] == ["healthcheck"]:
        sys.exit(probe("workflow_runner", settings.health_host, settings.health_port))
    configure_logging(settings.runtime, service="workflow_runner")
    if sys.argv[1:2] and sys.argv[1] in OWNER_COMMANDS:
        from services.workflow_runner.retention import PLAN

        sys.exit(run_owner_command(sys.argv[1:], settings.postgres, package=__package__, plan=PLAN))
    # Imported here, not above: the health check runs often and needs none of the service.
    import uvloop

    from services.workflow_runner.app import run

    uvloop.run(run(settings))  # libuv's loop: the services are all network I/O


if __name__ == "__main__":
    main()
