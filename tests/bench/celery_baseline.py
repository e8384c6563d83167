"""The Celery baseline (part 3): deliveries per second of a Celery worker.

What Python teams run today: a Celery worker, RabbitMQ as the broker, whose task signs the
body (`X-Webhook-Signature`, hex HMAC-SHA256), POSTs it with `requests` through a Session
kept per worker process, and records the status in Postgres (`tests/bench/celery_worker_app`
has the task). `run_celery_baseline` starts a publisher and a worker as subprocesses on a
fresh queue, lets the worker warm up, and counts the statuses recorded in Postgres over the
measurement window.

`python -m tests.bench.celery_baseline --duration 10` runs it standalone against a local
aiohttp receiver answering 200 (401 on a bad signature) and a temporary database; `--sweep`
tries every setting in `SWEEP` and prints a table.

The worker settings tried, their figures and the default chosen are in `SETTINGS_TRIED`
below (`--sweep --rounds N` reruns them).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from kombu import Connection

from shared.signing import new_secret, verify_hex
from tests.bench.celery_worker_app import CREATE_SQL, DEFAULT_BROKER, TABLE

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKER_APP = "tests.bench.celery_worker_app"
_PR_SET_PDEATHSIG = 1  # prctl(2)


@dataclass(frozen=True)
class WorkerSettings:
    pool: str = "prefork"
    concurrency: int = 8
    prefetch: int = 4
    acks_late: bool = False

    def describe(self) -> str:
        acks = "acks_late" if self.acks_late else "acks early"
        return f"-P {self.pool} -c {self.concurrency}, prefetch x{self.prefetch}, {acks}, -O fair"


# What every run has besides `WorkerSettings`.
FIXED_SETUP = (
    "--without-gossip --without-mingle --without-heartbeat; durable queue, persistent"
    " messages, json, no result backend; requests.Session per process (per thread under"
    " -P threads); one INSERT per task (asyncpg on a per-process loop)"
)


# Tried on this machine (a 2-core VM running RabbitMQ 3.10, Postgres 15, the receiver, the
# publisher and the worker; 1 KB body; 5 s warmup; deliveries/s, one figure per run, runs of
# different settings interleaved, in three sessions: A 2 rounds of 20 s windows, B 3 rounds
# of 40 s, C 4 rounds of 20 s). The VM's own speed wanders: a pure-Python loop on both cores
# ranges over 5.4k-8.6k units/s second by second with nothing else running, one round of B
# (marked *) ran at about half speed for every setting, and C ran slower than A throughout;
# so settings within ~15% of each other are not told apart by one run. prefork -c 8,
# prefetch 4 was first or close in every session and the steadiest: it is the default.
# gevent and eventlet are not installed, so their pools were not tried; `-P solo` stalls for
# up to 10 s between tasks waiting on the broker (54/s in one run), so it was dropped.
SETTINGS_TRIED = """\
all: -O fair, --without-gossip/mingle/heartbeat, acks early unless `late` (acks_late).
Deliveries/s; medians span unequal sessions, so compare within a column.
setting                             A (20 s)  B (40 s)        C (20 s)            median
-P prefork -c 2,  prefetch 4        213, 346                                      280
-P prefork -c 4,  prefetch 4        525, 403  224*, 408, 465  397, 462, 259, 388  403
-P prefork -c 8,  prefetch 4        530, 454  227*, 557, 468  383, 435, 432, 395  435
-P prefork -c 16, prefetch 4        493, 528  207*, 432, 480  428, 369, 406, 340  428
-P prefork -c 4,  prefetch 1        447, 576  192*, 406, 614  382, 402, 371, 484  406
-P prefork -c 8,  prefetch 1        461, 443                                      452
-P prefork -c 4,  prefetch 16       572, 454  328*, 381, 453                      453
-P prefork -c 8,  prefetch 16                 258*, 476, 477                      476
-P prefork -c 4,  prefetch 4, late  441, 360                                      401
-P prefork -c 8,  prefetch 1, late  507, 404                                      456
-P threads -c 16, prefetch 4        391, 385                                      388
-P threads -c 32, prefetch 4        402, 428                  358, 346, 364, 317  361
default: -P prefork -c 8, prefetch 4, acks early
"""

DEFAULT_SETTINGS = WorkerSettings("prefork", 8, 4)

# Every setting `--sweep` tries.
SWEEP = [
    WorkerSettings("prefork", 2, 4),
    WorkerSettings("prefork", 4, 4),
    WorkerSettings("prefork", 8, 4),
    WorkerSettings("prefork", 16, 4),
    WorkerSettings("prefork", 4, 1),
    WorkerSettings("prefork", 8, 1),
    WorkerSettings("prefork", 4, 16),
    WorkerSettings("prefork", 4, 4, acks_late=True),
    WorkerSettings("prefork", 8, 1, acks_late=True),
    WorkerSettings("threads", 16, 4),
    WorkerSettings("threads", 32, 4),
]


async def run_celery_baseline(
    *,
    receiver_url: str,
    body: bytes,
    secret: str,
    database_url: str,
    duration_s: float,
    warmup_s: float,
    settings: WorkerSettings = DEFAULT_SETTINGS,
    broker_url: str = DEFAULT_BROKER,
) -> dict:
    """Deliveries per second of a Celery worker POSTing `body` to `receiver_url`.

    Creates `bench_celery.deliveries` in `database_url` if missing; starts a publisher
    (keeping 4k-5k ready tasks in a fresh queue) and a worker (`settings`) as
    subprocesses; waits for the first recorded delivery, then `warmup_s`, then counts the
    rows recorded over the next `duration_s` (by their Postgres timestamps). Then stops both,
    deletes the queue and this run's rows. Returns `per_s` (rows recorded per second of the
    window, whatever their status), `settings` (the worker's), `setup` (what every run
    shares), `settings_tried` (the settings tried on this machine, their figures and the
    default chosen), `window_s` (measured), `deliveries`,
    `statuses` (status code -> count in the window) and `starved` (whether the queue had
    run dry by the end of the window, which would make `per_s` a publisher figure).
    """
    run = uuid.uuid4().hex[:12]
    queue = f"bench-celery-{run}"
    env = {
        **os.environ,
        "BENCH_CELERY_BROKER": broker_url,
        "BENCH_CELERY_QUEUE": queue,
        "BENCH_CELERY_DATABASE_URL": database_url,
        "BENCH_CELERY_ACKS_LATE": "1" if settings.acks_late else "0",
        # The threads pool shares one process, hence one asyncpg pool, among its threads.
        "BENCH_CELERY_DB_POOL": str(min(settings.concurrency, 8))
        if settings.pool == "threads"
        else "1",
        "BENCH_CELERY_URL": receiver_url,
        "BENCH_CELERY_SECRET": secret,
        "BENCH_CELERY_RUN": run,
    }
    connection = await asyncpg.connect(database_url)
    processes: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="bench-celery-") as scratch:
        body_file = Path(scratch, "body")
        body_file.write_bytes(body)
        env["BENCH_CELERY_BODY_FILE"] = str(body_file)
        worker_log = Path(scratch, "worker.log")
        try:
            with contextlib.suppress(asyncpg.UniqueViolationError):
                await connection.execute(CREATE_SQL)  # IF NOT EXISTS still races
            processes.append(_spawn([sys.executable, "-m", WORKER_APP], env, scratch, "pub"))
            processes.append(_spawn(_worker_command(settings, queue, run), env, scratch, "worker"))
            await _wait_first_delivery(connection, run, processes, worker_log)
            await asyncio.sleep(warmup_s)
            start = await connection.fetchval("SELECT clock_timestamp()")
            await asyncio.sleep(duration_s)
            end = await connection.fetchval("SELECT clock_timestamp()")
            starved = await asyncio.to_thread(_queue_depth, broker_url, queue) == 0
            await asyncio.sleep(1.0)  # inserts stamped before `end` commit meanwhile
            rows = await connection.fetch(
                f"SELECT status_code, count(*) AS n FROM {TABLE}"
                " WHERE run = $1 AND at >= $2 AND at < $3 GROUP BY status_code",
                run,
                start,
                end,
            )
        finally:
            await asyncio.to_thread(_stop_all, processes)
            await asyncio.to_thread(_delete_queue, broker_url, queue)
            with contextlib.suppress(Exception):
                await connection.execute(f"DELETE FROM {TABLE} WHERE run = $1", run)
            await connection.close()
    window_s = (end - start).total_seconds()
    statuses = {row["status_code"]: row["n"] for row in rows}
    deliveries = sum(statuses.values())
    return {
        "per_s": deliveries / window_s,
        "settings": settings.describe(),
        "setup": FIXED_SETUP,
        "settings_tried": SETTINGS_TRIED,
        "window_s": window_s,
        "deliveries": deliveries,
        "statuses": statuses,
        "starved": starved,
    }


def _worker_command(settings: WorkerSettings, queue: str, run: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        WORKER_APP,
        "worker",
        "-Q",
        queue,
        "-P",
        settings.pool,
        "-c",
        str(settings.concurrency),
        "--prefetch-multiplier",
        str(settings.prefetch),
        "-n",
        f"bench-{run}@%h",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "-l",
        "WARNING",
    ]


def _spawn(command: list[str], env: dict, scratch: str, name: str) -> subprocess.Popen:
    # Its own session, so that stopping it can kill every process it forked; and SIGTERM
    # (Celery's warm shutdown) when this process dies, so that a killed benchmark leaves
    # no worker behind.
    libc = ctypes.CDLL(None, use_errno=True)

    def die_with_parent() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    log = Path(scratch, f"{name}.log").open("wb")
    try:
        return subprocess.Popen(
            command,
            env=env,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent if sys.platform == "linux" else None,
        )
    finally:
        log.close()


async def _wait_first_delivery(
    connection: asyncpg.Connection,
    run: str,
    processes: list[subprocess.Popen],
    worker_log: Path,
    timeout_s: float = 60.0,
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await connection.fetchval(f"SELECT EXISTS (SELECT 1 FROM {TABLE} WHERE run = $1)", run):
            return
        if any(process.poll() is not None for process in processes):
            break
        await asyncio.sleep(0.2)
    logs = "\n".join(
        f"--- {log.name}\n{log.read_text(errors='replace')[-4000:]}"
        for log in sorted(worker_log.parent.glob("*.log"))
    )
    raise RuntimeError(f"the Celery worker recorded no delivery:\n{logs}")


def _stop_all(processes: list[subprocess.Popen]) -> None:
    """SIGTERM (Celery's warm shutdown) each, then SIGKILL whatever is left of its group."""
    for process in reversed(processes):  # the worker first, then the publisher
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in reversed(processes):
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
        # The group is the process's own session: the worker and its pool's children.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _queue_depth(broker_url: str, queue: str) -> int:
    with Connection(broker_url) as connection:
        return connection.default_channel.queue_declare(queue=queue, passive=True).message_count


def _delete_queue(broker_url: str, queue: str) -> None:
    with Connection(broker_url) as connection:
        channel = connection.default_channel
        with contextlib.suppress(Exception):
            channel.queue_purge(queue)
            channel.queue_delete(queue)


# --- standalone: `python -m tests.bench.celery_baseline` ---------------------------------


def sample_body(size: int) -> bytes:
    """A room event's JSON body, padded to about `size` bytes."""
    event = {
        "id": str(uuid.uuid4()),
        "type": "room.message.created",
        "organization_id": str(uuid.uuid4()),
        "room_id": "room-42",
        "created_at": "2026-01-01T00:00:00Z",
        "data": {"author": "user-7", "text": ""},
    }
    padding = max(0, size - len(json.dumps(event)))
    event["data"]["text"] = "x" * padding
    return json.dumps(event).encode()


async def _start_receiver(secret: str):
    from aiohttp import web

    async def receive(request: web.Request) -> web.Response:
        payload = await request.read()
        signature = request.headers.get("X-Webhook-Signature", "")
        return web.Response(status=200 if verify_hex(secret, payload, signature) else 401)

    application = web.Application()
    application.router.add_post("/hook", receive)
    runner = web.AppRunner(application, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}/hook"


@contextlib.asynccontextmanager
async def _temp_database(admin_url: str):
    name = f"bench_celery_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield _with_database(admin_url, name)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


async def _main(args: argparse.Namespace) -> None:
    secret = new_secret()
    body = sample_body(args.body_size)
    runner, receiver_url = await _start_receiver(secret)
    sweep = SWEEP if args.sweep else [_settings_from(args)]
    figures: dict[str, list[float]] = {}
    try:
        async with _temp_database(args.admin_database_url) as database_url:
            for _ in range(args.rounds):
                for settings in sweep:
                    result = await run_celery_baseline(
                        receiver_url=receiver_url,
                        body=body,
                        secret=secret,
                        database_url=database_url,
                        duration_s=args.duration,
                        warmup_s=args.warmup,
                        settings=settings,
                        broker_url=args.broker,
                    )
                    print(json.dumps(result), flush=True)
                    figures.setdefault(result["settings"], []).append(result["per_s"])
    finally:
        await runner.cleanup()
    if len(sweep) > 1 or args.rounds > 1:
        for described, per_s in figures.items():
            runs = ", ".join(f"{figure:.0f}" for figure in per_s)
            print(f"{statistics.median(per_s):7.0f}/s  {described}  ({runs})")


def _settings_from(args: argparse.Namespace) -> WorkerSettings:
    return WorkerSettings(
        pool=args.pool,
        concurrency=args.concurrency,
        prefetch=args.prefetch,
        acks_late=args.acks_late,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Celery baseline: deliveries per second.")
    parser.add_argument("--duration", type=float, default=20.0, help="measured window, s")
    parser.add_argument("--warmup", type=float, default=5.0, help="after the first delivery, s")
    parser.add_argument("--body-size", type=int, default=1024)
    parser.add_argument("--pool", default=DEFAULT_SETTINGS.pool)
    parser.add_argument("--concurrency", type=int, default=DEFAULT_SETTINGS.concurrency)
    parser.add_argument("--prefetch", type=int, default=DEFAULT_SETTINGS.prefetch)
    parser.add_argument(
        "--acks-late", action=argparse.BooleanOptionalAction, default=DEFAULT_SETTINGS.acks_late
    )
    parser.add_argument("--sweep", action="store_true", help="try every setting in SWEEP")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each setting")
    parser.add_argument("--broker", default=DEFAULT_BROKER)
    parser.add_argument(
        "--admin-database-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="where to create (and drop) the temporary database",
    )
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
