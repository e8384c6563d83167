"""Follows `<ns>.registry` into the subscription indexes: load to the end first, then keep up.

No consumer group: every fanout replica reads every partition from the beginning (the topic
is compacted, so that is the current record per key plus recent history) and applies each
record, newest revision wins. `load` returns only once the index holds everything that was
in the topic when it was called; until then fanout must not match.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from pydantic import ValidationError

from services.fanout.index import Subscriptions
from services.fanout.metrics import FanoutMetrics
from shared.messages import WebhookRecord, WorkflowRecord, parse_registry_key

log = structlog.get_logger(__name__)


_MODELS: dict[str, type[WebhookRecord] | type[WorkflowRecord]] = {
    "webhook": WebhookRecord,
    "workflow": WorkflowRecord,
}


def apply_change(indexes: Subscriptions, key: bytes | None, value: bytes | None) -> str:
    """Apply one registry record; returns the outcome (a metrics label).

    `webhook:<id>` / `workflow:<id>` with a record: applied or stale; with null: removed.
    Other kinds are ignored; undecodable records (or a record under another kind's key) are
    skipped as invalid.
    """
    try:
        kind, record_id = parse_registry_key(key.decode("utf-8")) if key else ("", "")
    except (UnicodeDecodeError, ValueError):
        return "invalid"
    index = indexes.of(kind)
    if index is None:
        return "ignored" if kind else "invalid"
    if value is None:
        return "removed" if index.remove(record_id) else "ignored"
    try:
        record = _MODELS[kind].model_validate_json(value)
    except ValidationError:
        return "invalid"
    if record.id != record_id:
        return "invalid"
    return "applied" if index.apply(record) else "stale"


class RegistryFeed:
    """Owns the registry consumer's position; the caller owns the consumer's life."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        topic: str,
        indexes: Subscriptions,
        metrics: FanoutMetrics,
        *,
        max_records: int,
        poll_timeout_ms: int,
    ) -> None:
        self._consumer = consumer
        self._topic = topic
        self._indexes = indexes
        self._metrics = metrics
        self._max_records = max_records
        self._poll_timeout_ms = poll_timeout_ms
        self.loaded = False

    async def load(self) -> None:
        """Assign every partition from the beginning and read until caught up.

        The target per partition is the highwater of the first fetch response, else the
        ListOffsets end: Tansu answers `end_offsets` with the base offset + 1 of a partition's
        last batch, which is too low when that batch held several records; the fetch
        highwater is right on both brokers and never lower than the end at load start.
        """
        started = time.monotonic()
        partitions = self._consumer.partitions_for_topic(self._topic)
        if not partitions:
            await self._consumer.topics()  # refreshes metadata
            partitions = self._consumer.partitions_for_topic(self._topic)
        if not partitions:
            raise RuntimeError(f"topic {self._topic} has no partitions (not created?)")
        tps = [TopicPartition(self._topic, p) for p in sorted(partitions)]
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        ends = await self._consumer.end_offsets(tps)
        targets: dict[TopicPartition, int] = dict(ends)
        observed: set[TopicPartition] = set()
        records = 0
        while True:
            for tp in tps:
                highwater = self._consumer.highwater(tp)
                if tp not in observed and highwater is not None:
                    observed.add(tp)
                    targets[tp] = highwater
            if all([await self._consumer.position(tp) >= targets[tp] for tp in tps]):
                break
            records += await self.poll()
        self.loaded = True
        log.info(
            "fanout.index_loaded",
            webhooks=len(self._indexes.webhooks),
            webhooks_enabled=self._indexes.webhooks.enabled_count,
            workflows=len(self._indexes.workflows),
            workflows_enabled=self._indexes.workflows.enabled_count,
            records=records,
            partitions=len(tps),
            duration_s=round(time.monotonic() - started, 3),
        )

    async def poll(self) -> int:
        """Read and apply one batch; returns how many records it held."""
        batch = await self._consumer.getmany(
            timeout_ms=self._poll_timeout_ms, max_records=self._max_records
        )
        count = 0
        for messages in batch.values():
            count += self._apply(messages)
        if count:
            self._metrics.set_index_sizes(self._indexes)
        return count

    def _apply(self, messages: Iterable[ConsumerRecord]) -> int:
        count = 0
        for message in messages:
            where = {"partition": message.partition, "offset": message.offset}
            try:
                outcome = apply_change(self._indexes, message.key, message.value)
            except Exception as exc:
                # Raising would lose the rest of the batch (it is not fetched again): skip
                # this record alone, as it would fail the same way on every read.
                log.exception("fanout.registry_record_failed", error=repr(exc), **where)
                outcome = "invalid"
            self._metrics.registry_records.labels(outcome).inc()
            if outcome == "invalid":
                self._metrics.poison.inc("invalid_registry_record")
                log.warning("fanout.registry_record_invalid", **where)
            count += 1
        return count
