"""Workflow runner settings: env prefix ROOMHOOKS_WORKFLOWS_, connections nested."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import (
    CommaList,
    KafkaSettings,
    PostgresSettings,
    Profile,
    RuntimeSettings,
)
from shared.tracing import TracingSettings


class RunnerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ROOMHOOKS_WORKFLOWS_", extra="ignore")

    # The sandbox: Deno host processes, one per organization at most this many (LRU), and the
    # limits of one run.
    max_hosts: int = Field(default=8, ge=1, le=64)
    # Each host in a cgroup v2 of its own (memory.max, pids.max) below this directory: one
    # delegated to the runner (no process in it, `memory` and `pids` in its controllers,
    # writable by the runner). None: the runner's own cgroup, which can enable controllers
    # for children while the runner is in it only as a machine's root cgroup (never in a
    # container).
    cgroup_parent: str | None = None
    # Threads a host may have: one per Worker (64 at most) and the runtime's own.
    pids_max: int = Field(default=128, ge=8)
    wall_timeout_s: float = Field(default=5.0, gt=0, le=300)
    cpu_limit_ms: int = Field(default=500, ge=10, le=300_000)
    heap_mb: int = Field(default=128, ge=16)
    memory_max_mb: int = Field(default=768, ge=32)
    max_result_bytes: int = Field(default=64 * 1024, ge=1024)
    max_log_bytes: int = Field(default=64 * 1024, ge=1024)
    max_fetches_per_run: int = Field(default=50, ge=0)
    # Runs at once, per process, and for one organization (its host takes 16).
    max_concurrent_runs: int = Field(default=32, ge=1)
    max_concurrent_runs_per_organization: int = Field(default=16, ge=1)
    # Run requests fetched and not started yet, at most (the consumer fetches while there is room).
    fetch_max_records: int = Field(default=100, ge=1)
    # fetch() from workflows: same SSRF guard as deliveries.
    fetch_timeout_s: float = Field(default=10.0, gt=0)
    fetch_max_bytes: int = Field(default=1024 * 1024, ge=1024)
    allow_loopback: bool | None = None
    allowed_networks: CommaList = Field(default_factory=list)
    # A loop that tried one input (a projection batch, a run) this many times in a row and
    # failed turns /readyz red with the reason; tries are spaced by a back-off doubling from
    # 0.5 s up to retry_backoff_max_s.
    retry_limit: int = Field(default=10, ge=1)
    retry_backoff_max_s: float = Field(default=5.0, gt=0, le=300)
    # A consumer holding partitions that has not fetched for this long turns /readyz red
    # (keep it above the wall time: a full flow fetches again when a run ends).
    fetch_stall_s: float = Field(default=60.0, gt=0)
    health_host: str = "127.0.0.1"
    health_port: int = Field(default=8083, ge=0, le=65535)

    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    # OpenTelemetry (OTEL_*): off unless OTEL_EXPORTER_OTLP_ENDPOINT is set.
    tracing: TracingSettings = Field(default_factory=TracingSettings)

    @property
    def loopback_allowed(self) -> bool:
        if self.allow_loopback is not None:
            return self.allow_loopback
        return self.runtime.profile is Profile.DEV
