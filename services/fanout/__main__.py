"""`python -m services.fanout`: match events; emit delivery and workflow run requests.

`python -m services.fanout healthcheck` asks its /healthz instead (the container's check);
`python -m services.fanout migrate`, as the owner role, applies its schema's (the event log's)
migrations and grants (the migrate step of deploy/README.md).
"""

import sys

from services.fanout.settings import FanoutSettings
from shared.healthcheck import probe
from shared.logging import configure_logging


def main() -> None:
    settings = FanoutSettings()
    if sys.argv[1:] == ["healthcheck"]:
        sys.exit(probe("fanout", settings.health_host, settings.health_port))
    configure_logging(settings.runtime, service="fanout")
    if sys.argv[1:] == ["migrate"]:
        from services.fanout import SCHEMA
        from shared.migrate import migrate_main

        sys.exit(migrate_main(settings.postgres, schema=SCHEMA, package=__package__))
    # Imported here, not above: the health check runs often and needs none of the service.
    import uvloop

    from services.fanout.app import run

    uvloop.run(run(settings))  # libuv's loop: the services are all network I/O


if __name__ == "__main__":
    main()
