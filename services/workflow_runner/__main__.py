"""`python -m services.workflow_runner`: customer workflows run in the Deno sandbox.

`python -m services.workflow_runner healthcheck` asks its /healthz instead (the container's check);
`python -m services.workflow_runner migrate`, as the owner role, applies its schema's
migrations and grants (the migrate step of deploy/README.md).
"""

import sys

from services.workflow_runner.settings import RunnerSettings
from shared.healthcheck import probe
from shared.logging import configure_logging


def main() -> None:
    settings = RunnerSettings()
    if sys.argv[1:] == ["healthcheck"]:
        sys.exit(probe("workflow_runner", settings.health_host, settings.health_port))
    configure_logging(settings.runtime, service="workflow_runner")
    if sys.argv[1:] == ["migrate"]:
        from services.workflow_runner import SCHEMA
        from shared.migrate import migrate_main

        sys.exit(migrate_main(settings.postgres, schema=SCHEMA, package=__package__))
    # Imported here, not above: the health check runs often and needs none of the service.
    import uvloop

    from services.workflow_runner.app import run

    uvloop.run(run(settings))  # libuv's loop: the services are all network I/O


if __name__ == "__main__":
    main()
