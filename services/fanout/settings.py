"""Fanout settings: env prefix ROOMHOOKS_FANOUT_, connections nested."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import KafkaSettings, PostgresSettings, RuntimeSettings
from shared.tracing import TracingSettings


class FanoutSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ROOMHOOKS_FANOUT_", extra="ignore")

    # Events routed per batch; the batch's offsets are committed once all its output is acked.
    # What each batch costs whatever its size (a fetch, an insert, a produce request per
    # partition, a commit) is shared by more events: on the fan-out bench 500 gave
    # 11,000-11,400 events/s, 1,000 12,700-13,100, 2,000 13,000.
    batch_max_records: int = Field(default=1000, ge=1)
    # How long one fetch waits for records; also bounds how quickly a stop is noticed.
    poll_timeout_ms: int = Field(default=500, ge=10)
    # Back-off after a failed loop iteration doubles from min to max.
    backoff_min_s: float = Field(default=0.2, gt=0)
    backoff_max_s: float = Field(default=10.0, gt=0)
    # `/readyz` is red when a loop has failed this many times in a row (the broker away: a
    # batch is retried, never skipped; an event that fails for its content goes to the DLQ).
    retry_limit: int = Field(default=10, ge=1)
    # `/readyz` is red when the events consumer holds partitions but has not fetched this long.
    fetch_stall_s: float = Field(default=60.0, gt=0)
    health_host: str = "127.0.0.1"
    # 0 turns the probe server off.
    health_port: int = Field(default=8081, ge=0, le=65535)

    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    # The event log (schema `events`): one insert per batch, before its offsets are committed.
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    # OpenTelemetry (OTEL_*): off unless OTEL_EXPORTER_OTLP_ENDPOINT is set.
    tracing: TracingSettings = Field(default_factory=TracingSettings)
