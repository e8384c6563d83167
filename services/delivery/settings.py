"""Delivery settings: env prefix ROOMHOOKS_DELIVERY_, connections nested."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.settings import (
    CommaList,
    KafkaSettings,
    PostgresSettings,
    Profile,
    RuntimeSettings,
    SecretsSettings,
    split_commas,
)
from shared.tracing import TracingSettings

DEFAULT_RETRY_SCHEDULE = (1.0, 5.0, 30.0)  # seconds after attempts 1, 2, 3


class DeliverySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ROOMHOOKS_DELIVERY_", extra="ignore")

    # Seconds to wait after each failed attempt; its length + 1 is the number of attempts.
    retry_schedule: Annotated[list[float], NoDecode, BeforeValidator(split_commas)] = Field(
        default_factory=lambda: list(DEFAULT_RETRY_SCHEDULE)
    )
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    # Retry-After (429/503) is honoured as given up to this many seconds (a longer one is
    # shortened to it, so one answer cannot park a delivery for days). Retries wait their
    # step ±20 % (jitter); a Retry-After only ever gets added to, never shortened, by it.
    retry_after_max_s: float = Field(default=600.0, ge=0)
    max_in_flight: int = Field(default=256, ge=1)
    per_webhook_concurrency: int = Field(default=16, ge=1)
    # Deliveries one webhook may hold in this process (running and waiting); past it they
    # wait in Postgres, so a dead endpoint never fills the process.
    per_webhook_backlog: int = Field(default=64, ge=1)
    # A claimed delivery is not claimed again before this; must exceed timeout_s. An attempt
    # that waited in its lane until less than timeout_s (+ a margin) of it was left renews it
    # as it starts, so the lease always covers the attempt.
    lease_s: float = Field(default=60.0, gt=0)
    scheduler_interval_s: float = Field(default=0.5, gt=0)
    claim_batch: int = Field(default=200, ge=1)
    fetch_max_records: int = Field(default=500, ge=1)
    # Held deliveries resumed, and failed ones a recovery job makes due, per statement; a job
    # keeps at most 1.5 of these due at once. The upkeep loop runs this often at least.
    upkeep_batch: int = Field(default=500, ge=2, le=10_000)
    upkeep_interval_s: float = Field(default=2.0, gt=0)
    # Auto-disable: a webhook without a successful attempt for this long (never succeeded:
    # since its creation) and with a delivery failed for good since is disabled, with the
    # reason (5 days; seconds for tests). Checked on every upkeep pass.
    disable_after_s: float = Field(default=432_000.0, gt=0)
    record_batch: int = Field(default=500, ge=1)
    response_body_max_bytes: int = Field(default=4096, ge=0)
    webhook_cache_ttl_s: float = Field(default=60.0, ge=0)
    # SSRF guard: None lets the profile decide (dev: loopback allowed; production: refused).
    allow_loopback: bool | None = None
    # Extra networks (CIDR) an operator allows despite the guard, e.g. an internal proxy.
    allowed_networks: CommaList = Field(default_factory=list)
    # SIGTERM: how long in-flight attempts may take to finish before they are released to be
    # retried elsewhere; the process exits within it. Fits Kubernetes' default
    # terminationGracePeriodSeconds (30) with margin.
    shutdown_grace_s: float = Field(default=25.0, gt=0, le=3600)
    # /readyz turns red when finished attempts wait this long unwritten without the backlog
    # shrinking, or when the request consumer has not fetched for this long while it has
    # partitions and room in its lanes.
    recorder_stall_s: float = Field(default=60.0, gt=0)
    fetch_stall_s: float = Field(default=60.0, gt=0)
    # /readyz turns red when a loop (recorder write, request consumer, retry scheduler) has
    # failed this many times in a row on an outage; content failures are set aside at once.
    retry_limit: int = Field(default=10, ge=1)
    health_host: str = "127.0.0.1"
    health_port: int = Field(default=8082, ge=0, le=65535)

    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    secrets: SecretsSettings = Field(default_factory=SecretsSettings)
    # OpenTelemetry (OTEL_*): off unless OTEL_EXPORTER_OTLP_ENDPOINT is set.
    tracing: TracingSettings = Field(default_factory=TracingSettings)

    @field_validator("retry_schedule")
    @classmethod
    def _schedule(cls, value: list[float]) -> list[float]:
        if len(value) > 20 or any(not 0 <= delay <= 7 * 86400 for delay in value):
            raise ValueError("at most 20 delays, each from 0 s to 7 days")
        return value

    @model_validator(mode="after")
    def _lease_outlives_attempt(self) -> DeliverySettings:
        if self.lease_s <= self.timeout_s:
            raise ValueError("lease_s must be longer than timeout_s")
        return self

    @property
    def loopback_allowed(self) -> bool:
        if self.allow_loopback is not None:
            return self.allow_loopback
        return self.runtime.profile is Profile.DEV
