"""Running services as real processes, for tests that kill and restart them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from devtool.broker import TANSU_GAP_RECHECK_MS
from tests.support.secrets import TEST_SECRETS_KEY

REPO = Path(__file__).resolve().parents[2]


def service_env(
    *, database_url: str, bootstrap: str, namespace: str, **extra: str
) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ROOMHOOKS_", "KAFKA_")) and key != "DATABASE_URL"
    }
    env |= {
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_TOPIC_NAMESPACE": namespace,
        "KAFKA_PARTITIONS": "3",
        "KAFKA_SESSION_TIMEOUT_MS": "2000",
        # For the dev broker's race; on a real Kafka it only slows past a gap, which no test
        # makes (no compaction, no transactions).
        "KAFKA_GAP_RECHECK_MS": str(TANSU_GAP_RECHECK_MS),
        "ROOMHOOKS_PROFILE": "dev",
        "ROOMHOOKS_SECRETS_KEY": TEST_SECRETS_KEY,
        "ROOMHOOKS_LOG_FORMAT": "json",
        "PYTHONUNBUFFERED": "1",
    }
    return env | extra


class ServiceProcess:
    """`python -m services.<name>` with its output in a log file."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", f"services.{self.name}"],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout_s: float = 20) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def terminate(self) -> None:
        """SIGTERM without waiting (the test's event loop keeps serving meanwhile)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    @property
    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def delivery_process(
    log_dir: Path, *, database_url: str, bootstrap: str, namespace: str, **settings: str
) -> ServiceProcess:
    """`python -m services.delivery` on the test's database and topics, no probe server."""
    env = service_env(
        database_url=database_url,
        bootstrap=bootstrap,
        namespace=namespace,
        ROOMHOOKS_DELIVERY_HEALTH_PORT="0",
        **settings,
    )
    return ServiceProcess("delivery", env, log_dir)
