"""`python -m services.fanout`: match events; emit delivery and workflow run requests.

`python -m services.fanout healthcheck` asks its /healthz instead (the container's check).
"""

import sys

from services.fanout.settings import FanoutSettings
from shared.healthcheck import probe
from shared.logging import configure_logging


def main() -> None:
    settings = FanoutSettings()
    if sys.argv[1:] == ["healthcheck"]:
        sys.exit(probe("fanout", settings.health_host, settings.health_port))
    # Imported here, not above: the health check runs often and needs none of the service.
    import uvloop

    from services.fanout.app import run

    configure_logging(settings.runtime, service="fanout")
    uvloop.run(run(settings))  # libuv's loop: the services are all network I/O


if __name__ == "__main__":
    main()
