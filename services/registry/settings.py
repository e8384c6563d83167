"""Registry settings: env prefix ROOMHOOKS_REGISTRY_, connections nested."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import (
    CommaList,
    KafkaSettings,
    PostgresSettings,
    Profile,
    RuntimeSettings,
    SecretsSettings,
)

DEV_HTTP_HOSTS = ("localhost", "127.0.0.1", "::1")


class RegistrySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ROOMHOOKS_REGISTRY_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # Hosts whose webhook URLs may be plain http and loopback. None: the profile decides
    # (dev: localhost and loopback; production: none). Comma-separated in the environment.
    allowed_http_hosts: CommaList | None = None
    page_size_max: int = Field(default=100, ge=1)
    outbox_batch_size: int = Field(default=500, ge=1)
    # The relay also wakes on NOTIFY; this is the fallback poll.
    outbox_poll_interval_s: float = Field(default=1.0, gt=0)
    # Re-announce every webhook on start: a dev broker forgets its topics when it restarts.
    republish_on_start: bool | None = None

    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    secrets: SecretsSettings = Field(default_factory=SecretsSettings)

    @property
    def http_hosts(self) -> frozenset[str]:
        if self.allowed_http_hosts is not None:
            return frozenset(h.strip().lower() for h in self.allowed_http_hosts if h.strip())
        return frozenset(DEV_HTTP_HOSTS) if self.runtime.profile is Profile.DEV else frozenset()

    @property
    def should_republish_on_start(self) -> bool:
        if self.republish_on_start is not None:
            return self.republish_on_start
        return self.runtime.profile is Profile.DEV
