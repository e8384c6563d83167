"""`python -m services.delivery`: signed POSTs, retries, every attempt recorded.

`python -m services.delivery healthcheck` asks its /healthz instead (the container's check).
"""

import sys

from services.delivery.settings import DeliverySettings
from shared.healthcheck import probe
from shared.logging import configure_logging


def main() -> None:
    settings = DeliverySettings()
    if sys.argv[1:] == ["healthcheck"]:
        sys.exit(probe("delivery", settings.health_host, settings.health_port))
    # Imported here, not above: the health check runs often and needs none of the service.
    import uvloop

    from services.delivery.app import run

    configure_logging(settings.runtime, service="delivery")
    uvloop.run(run(settings))  # libuv's loop: the services are all network I/O


if __name__ == "__main__":
    main()
