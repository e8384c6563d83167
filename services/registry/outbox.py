"""The outbox relay: publishes committed registry changes to Kafka, in commit order.

At-least-once: rows are deleted only after the broker acknowledged them, so a crash between
the two publishes them again; consumers drop duplicates by key and revision. One relay
publishes at a time (a transaction-scoped advisory lock), which keeps per-key order across
any number of registry replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import asyncpg
import structlog
from aiokafka import AIOKafkaProducer
from prometheus_client import Counter

from services.registry.background import running
from shared.kafka import JSON_HEADERS

log = structlog.get_logger(__name__)

OUTBOX_CHANNEL = "roomhooks_registry_outbox"
_RELAY_LOCK_KEY = 0x72682D6F7574626F  # "rh-outbo"

# (topic, key, value); a None value is a tombstone.
OutboxEntry = tuple[str, bytes, bytes | None]


@dataclass(frozen=True)
class OutboxMessage:
    id: int
    topic: str
    key: bytes
    value: bytes | None


async def enqueue(conn: asyncpg.Connection, entries: Sequence[OutboxEntry]) -> None:
    """Add entries in the caller's transaction and wake the relay on commit."""
    await conn.executemany(
        "INSERT INTO registry.outbox (topic, key, value) VALUES ($1, $2, $3)", entries
    )
    # NOTIFY is delivered at commit, never for a rolled-back change.
    await conn.execute(f"NOTIFY {OUTBOX_CHANNEL}")


async def backlog(conn: asyncpg.Connection) -> int:
    """Rows not yet published."""
    return int(await conn.fetchval("SELECT count(*) FROM registry.outbox"))


async def _claim(conn: asyncpg.Connection, *, limit: int) -> list[OutboxMessage]:
    """Oldest first. Call inside a transaction holding the relay lock."""
    records = await conn.fetch(
        "SELECT id, topic, key, value FROM registry.outbox ORDER BY id LIMIT $1", limit
    )
    return [OutboxMessage(r["id"], r["topic"], r["key"], r["value"]) for r in records]


class OutboxRelay:
    """Publishes the outbox in batches until cancelled; `healthy` is False while publishing
    fails (readiness reports it)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        *,
        batch_size: int,
        poll_interval_s: float,
        listen_dsn: str | None = None,
        published: Counter | None = None,
    ) -> None:
        self._pool = pool
        self._producer = producer
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._published = published
        self._listen_dsn = listen_dsn
        self._wake = asyncio.Event()
        self.healthy = True

    async def publish_pending(self) -> int:
        """Publish one batch; returns how many rows left the outbox (0: empty or busy)."""
        async with self._pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _RELAY_LOCK_KEY):
                return 0  # another replica's relay is publishing
            messages = await _claim(conn, limit=self._batch_size)
            if not messages:
                return 0
            sent = [
                await self._producer.send(
                    m.topic,
                    value=m.value,
                    key=m.key,
                    headers=JSON_HEADERS if m.value is not None else None,
                )
                for m in messages
            ]
            # Delete only what the broker acknowledged; a failure rolls the batch back.
            await asyncio.gather(*sent)
            await conn.execute(
                "DELETE FROM registry.outbox WHERE id = ANY($1::bigint[])", [m.id for m in messages]
            )
        if self._published is not None:
            self._published.inc(len(messages))
        log.debug("outbox.published", count=len(messages))
        return len(messages)

    async def run(self) -> None:
        """Publish until cancelled: on NOTIFY, and every poll interval as a fallback. A lost
        LISTEN connection (Postgres restarted) wakes the loop, which listens again."""
        listener: asyncpg.Connection | None = None
        failures = 0
        try:
            while True:
                if self._listen_dsn is not None and (listener is None or listener.is_closed()):
                    listener = await self._listen(self._listen_dsn)
                # Cleared before publishing: a NOTIFY, or the listener's loss, while it runs
                # wakes the wait below at once rather than being cleared unseen.
                self._wake.clear()
                try:
                    while await self.publish_pending() == self._batch_size:
                        pass  # a full batch: more may be waiting
                    failures = 0
                    self.healthy = True
                except Exception as exc:  # noqa: BLE001 - Postgres or Kafka down: retry later
                    failures += 1
                    self.healthy = False
                    log.warning("outbox.publish_failed", error=repr(exc), failures=failures)
                delay = min(30.0, self._poll_interval_s * (2**failures if failures else 1))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=delay)
        finally:
            if listener is not None:
                with contextlib.suppress(Exception):
                    await listener.close()

    @contextlib.asynccontextmanager
    async def publishing(self) -> AsyncIterator[None]:
        """Publish (run) until the block ends, then one last pass so changes committed just
        before the stop are published now."""
        try:
            async with running(self.run(), name="outbox-relay"):
                yield
        finally:
            with contextlib.suppress(Exception):
                await self.publish_pending()

    async def _listen(self, dsn: str) -> asyncpg.Connection | None:
        conn = None
        try:
            conn = await asyncpg.connect(dsn)
            await conn.add_listener(OUTBOX_CHANNEL, lambda *_: self._wake.set())
        except Exception as exc:  # noqa: BLE001 - polling still works without NOTIFY
            log.warning("outbox.listen_failed", error=repr(exc))
            if conn is not None:
                conn.terminate()
            return None
        conn.add_termination_listener(lambda _: self._wake.set())
        log.info("outbox.listening", channel=OUTBOX_CHANNEL)
        return conn
