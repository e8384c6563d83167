"""`python -m services.registry`: the webhook and workflow registry HTTP API."""

import uvloop

from services.registry.app import run
from services.registry.settings import RegistrySettings
from shared.logging import configure_logging


def main() -> None:
    settings = RegistrySettings()
    configure_logging(settings.runtime, service="registry")
    uvloop.run(run(settings))  # libuv's loop: the services are all network I/O


if __name__ == "__main__":
    main()
