"""The container health check: ask a service's `/healthz`; exit 0 when it answers 200, else 1.

Each service answers `python -m services.<name> healthcheck` itself (its settings say where
its probe server listens) with `probe`. One image runs all four services, so its HEALTHCHECK
cannot name one: `python -m shared.healthcheck` reads the module PID 1 runs (`python -m
services.delivery`) and runs that module with `healthcheck`; `python -m shared.healthcheck
MODULE` names it instead. Nothing here knows a service.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

TIMEOUT_S = 3.0
# The module's own run: an interpreter, its settings, one request.
RUN_TIMEOUT_S = 10.0


def module_in_command(cmdline: bytes) -> str | None:
    """The module a NUL-separated command line runs with `-m`, if any."""
    args = cmdline.decode(errors="replace").split("\0")
    for flag, module in itertools.pairwise(args):
        if flag == "-m" and module:
            return module
    return None


def probe_url(host: str, port: int) -> str:
    """Where to ask: a wildcard listen address is reached on loopback."""
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - a listen address, not one we bind
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/healthz"


def probe(service: str, host: str, port: int) -> int:
    """0 when the probe server on (host, port) answers /healthz with 200, else 1 (Docker's
    convention); port 0 means the service runs without one."""
    if port == 0:
        print(f"healthcheck: {service}'s probe server is off (port 0)", file=sys.stderr)
        return 1
    url = probe_url(host, port)
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as answer:  # noqa: S310 - http URL we built
            return 0 if answer.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"healthcheck: {url}: {exc}", file=sys.stderr)
        return 1


def main(argv: list[str]) -> int:
    module = argv[0] if argv else module_in_command(Path("/proc/1/cmdline").read_bytes())
    if not module:
        print("healthcheck: PID 1 runs no python module to probe", file=sys.stderr)
        return 1
    try:
        done = subprocess.run(  # noqa: S603 - our interpreter, a module name from the command line
            [sys.executable, "-m", module, "healthcheck"],
            stdin=subprocess.DEVNULL,
            timeout=RUN_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        print(f"healthcheck: {module} did not answer in {RUN_TIMEOUT_S} s", file=sys.stderr)
        return 1
    return 0 if done.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
