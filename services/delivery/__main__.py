"""`python -m services.delivery`: signed POSTs, retries, every attempt recorded."""

import asyncio

from services.delivery.app import run
from services.delivery.settings import DeliverySettings
from shared.logging import configure_logging


def main() -> None:
    settings = DeliverySettings()
    configure_logging(settings.runtime, service="delivery")
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
