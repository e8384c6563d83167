"""`python -m shared.healthcheck [SERVICE]`: the container health check of every service.

One image runs all four services, so its HEALTHCHECK cannot name a port: this reads the
service from the container's command line (PID 1, e.g. `python -m services.delivery`) unless
one is given, builds that service's settings from the same environment the service read, and
asks its `/healthz`. Exit 0 when it answers 200, 1 otherwise (Docker's convention).
"""

from __future__ import annotations

import importlib
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path

# service -> (settings module, settings class, host field, port field)
PROBES: dict[str, tuple[str, str, str, str]] = {
    "registry": ("services.registry.settings", "RegistrySettings", "host", "port"),
    "fanout": ("services.fanout.settings", "FanoutSettings", "health_host", "health_port"),
    "delivery": ("services.delivery.settings", "DeliverySettings", "health_host", "health_port"),
    "workflow_runner": (
        "services.workflow_runner.settings",
        "RunnerSettings",
        "health_host",
        "health_port",
    ),
}
TIMEOUT_S = 3.0


def service_in_command(cmdline: bytes) -> str | None:
    """The service a NUL-separated command line runs (`-m services.<name>`), if any."""
    for arg in cmdline.decode(errors="replace").split("\0"):
        match = re.fullmatch(r"services\.(\w+)(?:\.__main__)?", arg)
        if match and match.group(1) in PROBES:
            return match.group(1)
    return None


def probe_url(host: str, port: int) -> str:
    """Where to ask: a wildcard listen address is reached on loopback."""
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - a listen address, not one we bind
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/healthz"


def main(argv: list[str]) -> int:
    service = argv[0] if argv else service_in_command(Path("/proc/1/cmdline").read_bytes())
    if service not in PROBES:
        print(f"healthcheck: no roomhooks service to probe ({service!r})", file=sys.stderr)
        return 1
    module, cls, host_field, port_field = PROBES[service]
    settings = getattr(importlib.import_module(module), cls)()
    port = getattr(settings, port_field)
    if port == 0:
        print(f"healthcheck: {service}'s probe server is off (port 0)", file=sys.stderr)
        return 1
    url = probe_url(getattr(settings, host_field), port)
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as answer:  # noqa: S310 - http URL we built
            return 0 if answer.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"healthcheck: {url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
