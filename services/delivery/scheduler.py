"""The delivery service's background loops beside the request consumer: the retry scheduler,
which claims due retries, and the registry watcher, which keeps the targets cache honest."""

from __future__ import annotations

import asyncio
import contextlib
from uuid import UUID

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.delivery.service import DeliveryService
from services.delivery.targets import Targets
from shared.failures import describe
from shared.messages import parse_registry_key
from shared.readiness import RetryWatch

log = structlog.get_logger(__name__)


async def schedule_retries(
    service: DeliveryService,
    *,
    stopping: asyncio.Event,
    retries: RetryWatch,
    claim_batch: int,
    interval_s: float,
) -> None:
    """Claim due retries until `stopping` is set: at once again after a full claim, else when
    the service wakes the scheduler or `interval_s` has passed."""
    while not stopping.is_set():
        claimed = 0
        try:
            claimed = await service.claim_due()
            retries.succeeded()
        except Exception as exc:  # noqa: BLE001 - this loop's top-level catch
            retries.failed(describe(exc))
            log.warning("delivery.claim_failed", error=repr(exc)[:500])
        if claimed >= claim_batch:
            continue  # more are probably due
        service.wake_scheduler.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(service.wake_scheduler.wait(), timeout=interval_s)


async def watch_registry(watcher: AIOKafkaConsumer, topic: str, targets: Targets) -> None:
    """Drop cached targets whose webhook changed (url, secret, enabled, deletion); runs until
    cancelled, reading every partition of the registry topic without a group."""
    assigned = False
    while True:
        try:
            if not assigned:
                await watcher.topics()  # loads the metadata partitions_for_topic reads
                partitions = watcher.partitions_for_topic(topic) or {0}
                watcher.assign([TopicPartition(topic, p) for p in partitions])
                assigned = True
            batches = await watcher.getmany(timeout_ms=1000)
        except Exception as exc:  # noqa: BLE001 - broker away: the cache TTL still applies
            log.warning("delivery.registry_watch_failed", error=repr(exc))
            await asyncio.sleep(1)
            continue
        for records in batches.values():
            for record in records:
                with contextlib.suppress(ValueError, UnicodeDecodeError):
                    kind, record_id = parse_registry_key((record.key or b"").decode())
                    if kind == "webhook":
                        targets.invalidate(UUID(record_id))
