"""Orders to the registry from other services, on `roomhooks.registry.commands`.

At-least-once: each order is applied, then its offset committed; applying one twice is
harmless (disabling a disabled webhook changes nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog
from pydantic import ValidationError

from services.registry.background import running
from services.registry.errors import NotFound
from services.registry.webhooks.service import WebhookService
from shared.kafka import ServiceConsumer, Topics, make_consumer, offsets_after, read_again
from shared.messages import DisableWebhook
from shared.settings import KafkaSettings

log = structlog.get_logger(__name__)


async def apply_command(webhooks: WebhookService, raw: bytes | None) -> None:
    try:
        order = DisableWebhook.model_validate_json(raw or b"")
    except ValidationError as exc:
        log.error("registry.command_invalid", error=str(exc).splitlines()[0])
        return
    try:
        await webhooks.disable(order.organization_id, order.webhook_id, reason=order.reason)
    except NotFound:
        log.info("registry.command_for_unknown_webhook", webhook_id=order.webhook_id)


async def consume_commands(consumer: ServiceConsumer, webhooks: WebhookService) -> None:
    """Apply orders until cancelled; a failure re-reads the batch after a pause."""
    while True:
        batches = await consumer.getmany(timeout_ms=1000)
        try:
            for records in batches.values():
                for record in records:
                    await apply_command(webhooks, record.value)
            if batches:
                await consumer.commit(offsets_after(batches))
        except Exception as exc:  # noqa: BLE001 - this loop's top-level catch: re-read, retry
            log.warning("registry.command_failed", error=repr(exc))
            read_again(consumer, batches)
            await asyncio.sleep(1)


@contextlib.asynccontextmanager
async def commands_applied(kafka: KafkaSettings, webhooks: WebhookService) -> AsyncIterator[None]:
    """Consume the commands topic (the registry's group) and apply its orders until the block
    ends; then stop consuming."""
    topics = Topics.from_settings(kafka)
    consumer = make_consumer(
        kafka, topics.registry_commands, group_id=topics.group("registry"), background=True
    )
    await consumer.start()
    try:
        async with running(consume_commands(consumer, webhooks), name="registry-commands"):
            yield
    finally:
        await consumer.stop()
