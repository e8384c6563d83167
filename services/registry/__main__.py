"""`python -m services.registry`: the webhook and workflow registry HTTP API.

`python -m services.registry healthcheck` asks its /healthz instead (the container's check);
`python -m services.registry migrate`, as the owner role, applies its schema's migrations and
grants (the migrate step of deploy/README.md).
"""

import sys

from services.registry.settings import RegistrySettings
from shared.healthcheck import probe
from shared.logging import configure_logging


def main() -> None:
    settings = RegistrySettings()
    if sys.argv[1:] == ["healthcheck"]:
        sys.exit(probe("registry", settings.host, settings.port))
    configure_logging(settings.runtime, service="registry")
    if sys.argv[1:] == ["migrate"]:
        from shared.migrate import migrate_main

        sys.exit(migrate_main(settings.postgres, schema="registry", package="services.registry"))
    # Imported here, not above: the health check runs often and needs none of the service.
    import uvloop

    from services.registry.app import run

    uvloop.run(run(settings))  # libuv's loop: the services are all network I/O


if __name__ == "__main__":
    main()
