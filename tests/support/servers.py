"""Servers a test may stop and start again on the same port: its own Tansu broker and its own
throwaway Postgres (never the machine's shared cluster, which other work uses)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from devtool.broker import tansu_command
from tests.support.services import free_port, wait_for_port

LOOPBACK = "127.0.0.1"


class TansuServer:
    """A memory-only Tansu broker on one port for its whole life; `stop()` loses its data,
    as the dev broker does when it restarts."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.bootstrap = f"{LOOPBACK}:{self.port}"
        self._log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self._log_path, "ab") as log:
            self._proc = subprocess.Popen(
                tansu_command(LOOPBACK, self.port),
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        wait_for_port(LOOPBACK, self.port, timeout_s=15)

    def stop(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


def postgres_bin() -> Path:
    """The newest Debian `postgresql` server binaries (initdb, pg_ctl)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_major)
    if not found:
        raise FileNotFoundError("no /usr/lib/postgresql/*/bin/pg_ctl: install `postgresql`")
    return Path(found[-1]).parent


def _major(path: str) -> int:
    return int(Path(path).parts[-3])


class ThrowawayPostgres:
    """initdb + pg_ctl in a temporary folder on a free port, as the `postgres` OS user when
    run as root (the server refuses root). Trust auth on loopback only; no fsync."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"postgresql://postgres@{LOOPBACK}:{self.port}/postgres"
        self._root = Path(tempfile.mkdtemp(prefix="rh-pg-"))
        self._data = self._root / "data"
        self._bin = postgres_bin()
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self._root, owner.pw_uid, owner.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        else:
            self._as = []
        self._run("initdb", "-D", str(self._data), "-U", "postgres", "-A", "trust",
                  "--no-sync", "--no-instructions")  # fmt: skip

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self._as, str(self._bin / tool), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=120,
        )

    def _ctl(self, *args: str) -> None:
        options = (
            f"-p {self.port} -c listen_addresses={LOOPBACK} -k {self._root}"
            " -c fsync=off -c full_page_writes=off"
        )
        self._run("pg_ctl", "-D", str(self._data), "-l", str(self._root / "server.log"),
                  "-w", "-t", "60", "-o", options, *args)  # fmt: skip

    def start(self) -> None:
        self._ctl("start")

    def stop(self) -> None:
        """A fast shutdown: open sessions are ended, as in a restart by an operator."""
        self._ctl("stop", "-m", "fast")

    def remove(self) -> None:
        if (self._data / "postmaster.pid").exists():
            self._ctl("stop", "-m", "immediate")
        shutil.rmtree(self._root, ignore_errors=True)
