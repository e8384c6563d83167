"""`python -m services.registry`: the webhook and workflow registry HTTP API.

`python -m services.registry healthcheck` asks its /healthz instead (the container's check);
`python -m services.registry migrate` and `retention` run as the owner role
(shared/owner_commands.py).
"""

import sys

from services.registry.settings import RegistrySettings
from shared.healthcheck import probe
from shared.logging import configure_logging
from shared.owner_commands import OWNER_COMMANDS, run_owner_command


def main() -> None:
    settings = RegistrySettings()
    if sys.argv[1:] == ["healthcheck"]:
        sys.exit(probe("registry", settings.host, settings.port))
    configure_logging(settings.runtime, service="registry")
    if sys.argv[1:2] and sys.argv[1] in OWNER_COMMANDS:
        from services.registry.retention import PLAN

        sys.exit(run_owner_command(sys.argv[1:], settings.postgres, package=__package__, plan=PLAN))
    # Imported here, not above: the health check runs often and needs none of the service.
    import uvloop

    from services.registry.app import run

    uvloop.run(run(settings))  # libuv's loop: the services are all network I/O


if __name__ == "__main__":
    main()
