"""The Celery app of the baseline (`tests/bench/celery_baseline.py`): one task, `deliver`.

The worker is started as `python -m celery -A tests.bench.celery_worker_app worker ...`; it
is configured from the environment, which `celery_baseline` sets:

- `BENCH_CELERY_BROKER`: the AMQP URL (default `amqp://guest:guest@127.0.0.1:5672//`);
- `BENCH_CELERY_QUEUE`: the queue the worker consumes and the publisher sends to;
- `BENCH_CELERY_DATABASE_URL`: where `deliver` records each status (`TABLE`);
- `BENCH_CELERY_ACKS_LATE`: `1` to ack after the task ran (default `0`, Celery's default);
- `BENCH_CELERY_DB_POOL`: connections per worker process (default 1; the threads pool
  shares one process, so it wants more).

`deliver` does what a Python team's delivery task does: sign the body (hex HMAC-SHA256,
`X-Webhook-Signature`), POST it with `requests` through a Session kept per worker process
(per thread under `-P threads`, a Session not being thread-safe), and insert the status
into Postgres. No sync Postgres driver is installed here (no psycopg), so the insert goes
through asyncpg on one event loop per process, run in a daemon thread; tasks hand it their
insert with `run_coroutine_threadsafe` and wait for it, so each task still records its
status before it returns, as with a sync driver.
"""

from __future__ import annotations

import asyncio
import base64
import os
import threading
from concurrent.futures import Future

import asyncpg
import requests
from celery import Celery

from shared.signing import hex_signature

SCHEMA = "bench_celery"
TABLE = f"{SCHEMA}.deliveries"
CREATE_SQL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {TABLE} (
    id bigserial PRIMARY KEY,
    run text NOT NULL,
    status_code integer NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
"""
INSERT_SQL = f"INSERT INTO {TABLE} (run, status_code) VALUES ($1, $2)"

DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672//"
TASK_NAME = "bench.deliver"
REQUEST_TIMEOUT_S = 10.0

app = Celery("roomhooks_bench", broker=os.environ.get("BENCH_CELERY_BROKER", DEFAULT_BROKER))
_queue = os.environ.get("BENCH_CELERY_QUEUE", "bench-celery")
app.conf.update(
    task_default_queue=_queue,
    task_default_exchange=_queue,
    task_default_routing_key=_queue,
    task_ignore_result=True,
    task_acks_late=os.environ.get("BENCH_CELERY_ACKS_LATE", "0") == "1",
    task_serializer="json",
    accept_content=["json"],
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


class _Recorder:
    """One asyncpg pool on one event loop in a daemon thread, per process (made after fork)."""

    def __init__(self, database_url: str, pool_size: int) -> None:
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, name="bench-pg", daemon=True).start()
        self._pool: asyncpg.Pool = asyncio.run_coroutine_threadsafe(
            self._connect(database_url, pool_size), self._loop
        ).result()

    @staticmethod
    async def _connect(database_url: str, pool_size: int) -> asyncpg.Pool:
        return await asyncpg.create_pool(database_url, min_size=pool_size, max_size=pool_size)

    def record(self, run: str, status_code: int) -> None:
        done: Future = asyncio.run_coroutine_threadsafe(
            self._pool.execute(INSERT_SQL, run, status_code), self._loop
        )
        done.result()


_state_lock = threading.Lock()
_recorder: tuple[int, _Recorder] | None = None
_local = threading.local()


def _get_recorder() -> _Recorder:
    global _recorder
    pid = os.getpid()
    if _recorder is None or _recorder[0] != pid:
        with _state_lock:
            if _recorder is None or _recorder[0] != pid:
                _recorder = (
                    pid,
                    _Recorder(
                        os.environ["BENCH_CELERY_DATABASE_URL"],
                        int(os.environ.get("BENCH_CELERY_DB_POOL", "1")),
                    ),
                )
    return _recorder[1]


def _get_session() -> requests.Session:
    session = getattr(_local, "session", None)
    if session is None or getattr(_local, "pid", None) != os.getpid():
        session = requests.Session()
        _local.session, _local.pid = session, os.getpid()
    return session


def encode_body(body: bytes) -> tuple[str, bool]:
    """The body as a JSON-safe task argument: its text, or base64 if it is not UTF-8."""
    try:
        return body.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), True


@app.task(name=TASK_NAME)
def deliver(url: str, secret: str, body: str, is_b64: bool, run: str) -> int:
    raw = base64.b64decode(body) if is_b64 else body.encode("utf-8")
    headers = {
        "Content-Type": "application/json",
        "X-Webhook-Signature": hex_signature(secret, raw),
    }
    try:
        response = _get_session().post(url, data=raw, headers=headers, timeout=REQUEST_TIMEOUT_S)
        status = response.status_code
        response.close()
    except requests.RequestException:
        status = 0  # no answer (refused, reset, timed out): recorded as 0
    _get_recorder().record(run, status)
    return status


def publish_forever() -> None:
    """Publish `deliver` tasks to the queue until killed, keeping its ready depth bounded.

    Configured from the environment like the worker, plus `BENCH_CELERY_URL`,
    `BENCH_CELERY_SECRET`, `BENCH_CELERY_BODY_FILE` (the body's bytes), `BENCH_CELERY_RUN`,
    and `BENCH_CELERY_HIGH` / `BENCH_CELERY_LOW`: publish as fast as kombu goes until the
    queue holds `HIGH` ready messages, then wait until it is below `LOW`, so the worker never
    runs dry and RabbitMQ never holds more than about `HIGH` bodies.
    """
    import time
    from pathlib import Path

    url = os.environ["BENCH_CELERY_URL"]
    secret = os.environ["BENCH_CELERY_SECRET"]
    run = os.environ["BENCH_CELERY_RUN"]
    high = int(os.environ.get("BENCH_CELERY_HIGH", "5000"))
    low = int(os.environ.get("BENCH_CELERY_LOW", "4000"))
    body, is_b64 = encode_body(Path(os.environ["BENCH_CELERY_BODY_FILE"]).read_bytes())
    args = (url, secret, body, is_b64, run)
    check_every = 200
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        app.amqp.queues[_queue](channel).declare()
        producer = app.amqp.Producer(channel, auto_declare=False)
        while True:
            for _ in range(check_every):
                deliver.apply_async(args, producer=producer)
            depth = channel.queue_declare(queue=_queue, passive=True).message_count
            if depth >= high:
                while depth >= low:
                    time.sleep(0.1)
                    depth = channel.queue_declare(queue=_queue, passive=True).message_count


if __name__ == "__main__":
    publish_forever()
