"""`python -m services.delivery`: signed POSTs, retries, every attempt recorded.

`python -m services.delivery healthcheck` asks its /healthz instead (the container's check);
`python -m services.delivery migrate`, as the owner role, applies its schema's migrations and
grants (the migrate step of deploy/README.md).
"""

import sys

from services.delivery.settings import DeliverySettings
from shared.healthcheck import probe
from shared.logging import configure_logging


def main() -> None:
    settings = DeliverySettings()
    if sys.argv[1:] == ["healthcheck"]:
        sys.exit(probe("delivery", settings.health_host, settings.health_port))
    configure_logging(settings.runtime, service="delivery")
    if sys.argv[1:] == ["migrate"]:
        from shared.migrate import migrate_main

        sys.exit(migrate_main(settings.postgres, schema="delivery", package="services.delivery"))
    # Imported here, not above: the health check runs often and needs none of the service.
    import uvloop

    from services.delivery.app import run

    uvloop.run(run(settings))  # libuv's loop: the services are all network I/O


if __name__ == "__main__":
    main()
