"""The delivery service's background loops beside the request consumer: the retry scheduler,
which claims due retries; the upkeep loop, which resumes held deliveries and advances recovery
jobs; and the registry watcher, which keeps the targets cache honest and wakes the upkeep."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from uuid import UUID

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.delivery.service import DeliveryService
from services.delivery.targets import Targets
from services.delivery.upkeep import Upkeep
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


async def keep_up(
    upkeep: Upkeep, *, stopping: asyncio.Event, retries: RetryWatch, interval_s: float
) -> None:
    """Run upkeep passes until `stopping` is set: at once again while a batch was full, else
    when woken (a webhook changed, a recovery was ordered) or `interval_s` has passed (which
    also catches a webhook enabled while one of its deliveries was being held)."""
    while not stopping.is_set():
        upkeep.wake.clear()
        more = False
        try:
            more = await upkeep.run_once()
            retries.succeeded()
        except Exception as exc:  # noqa: BLE001 - this loop's top-level catch
            retries.failed(describe(exc))
            log.warning("delivery.upkeep_failed", error=repr(exc)[:500])
        if not more:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(upkeep.wake.wait(), timeout=interval_s)


async def watch_registry(
    watcher: AIOKafkaConsumer,
    topic: str,
    targets: Targets,
    changed: Callable[[], None] = lambda: None,
) -> None:
    """Drop cached targets whose webhook changed (url, secret, enabled, deletion) and call
    `changed`; runs until cancelled, reading every partition of the registry topic without
    a group."""
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
                        changed()
