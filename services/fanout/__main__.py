"""`python -m services.fanout`: match events; emit delivery and workflow run requests."""

import uvloop

from services.fanout.app import run
from services.fanout.settings import FanoutSettings
from shared.logging import configure_logging


def main() -> None:
    settings = FanoutSettings()
    configure_logging(settings.runtime, service="fanout")
    uvloop.run(run(settings))  # libuv's loop: the services are all network I/O


if __name__ == "__main__":
    main()
