"""`python -m services.delivery`: signed POSTs, retries, every attempt recorded."""

import uvloop

from services.delivery.app import run
from services.delivery.settings import DeliverySettings
from shared.logging import configure_logging


def main() -> None:
    settings = DeliverySettings()
    configure_logging(settings.runtime, service="delivery")
    uvloop.run(run(settings))  # libuv's loop: the services are all network I/O


if __name__ == "__main__":
    main()
