"""`python -m services.fanout`: match events; emit delivery and workflow run requests."""

import asyncio

from services.fanout.app import run
from services.fanout.settings import FanoutSettings
from shared.logging import configure_logging


def main() -> None:
    settings = FanoutSettings()
    configure_logging(settings.runtime, service="fanout")
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
