"""Registry settings: env prefix ROOMHOOKS_REGISTRY_, connections nested."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.settings import (
    CommaList,
    KafkaSettings,
    PostgresSettings,
    Profile,
    RuntimeSettings,
    SecretsSettings,
)

DEV_HTTP_HOSTS = ("localhost", "127.0.0.1", "::1")
# console/dist beside the packages in a checkout; the image sets the setting to its copy.
DEFAULT_CONSOLE_DIR = Path(__file__).resolve().parents[2] / "console" / "dist"

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_ORIGIN = re.compile(
    rf"(?P<scheme>https?)://(?P<host>{_LABEL}(?:\.{_LABEL})*|\[[0-9a-f:.]+\])(?::(?P<port>\d{{1,5}}))?"
)


def split_origins(value: object) -> object:
    if isinstance(value, str):
        return [part for part in re.split(r"[\s,]+", value) if part]
    return value


def is_origin(value: str) -> bool:
    if value == "'self'":
        return True
    match = _ORIGIN.fullmatch(value)
    return match is not None and (match["port"] is None or 0 < int(match["port"]) < 65536)


def check_frame_ancestors(origins: list[str]) -> list[str]:
    """Each an origin (`https://app.example.com`, `http://localhost:3000`) or `'self'`: they
    go into the portal's `frame-ancestors` as they are, so nothing else may."""
    lowered = [origin.lower() for origin in origins]
    for origin, value in zip(origins, lowered, strict=True):
        if not is_origin(value):
            raise ValueError(f"{origin!r} is not an origin like https://app.example.com or 'self'")
    return lowered


FrameAncestors = Annotated[
    list[str], NoDecode, BeforeValidator(split_origins), AfterValidator(check_frame_ancestors)
]


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
    # How often a rotation's previous secret is looked for once its overlap has ended, to be
    # erased (delivery stops signing with it on time whatever this is).
    secret_overlap_sweep_s: float = Field(default=60.0, gt=0)

    # Quotas per account. Fanout holds every enabled webhook in memory (README: what the
    # index costs at the quota), so the webhook quota bounds a tenant's share of it.
    webhooks_per_account: int = Field(default=1_000, ge=1)
    workflows_per_account: int = Field(default=100, ge=1)
    # Versions of one workflow kept (its newest); a save forgets the one this many before it.
    # A run still queued for a forgotten version fails, saying so.
    workflow_versions_kept: int = Field(default=100, ge=1)
    # UTF-8 bytes of one workflow's code; the request body limit follows from it.
    workflow_code_max_bytes: int = Field(default=256 * 1024, ge=1)
    # Token buckets, per replica: N replicas let a key spend N times this.
    # Per API key: refill per second and bucket size (a burst at rest).
    api_rate_per_s: float = Field(default=100.0, gt=0)
    api_burst: int = Field(default=200, ge=1)
    # Per client address, spent only by requests whose key is missing or unknown; once it is
    # empty such an address is refused before its key is looked up.
    unknown_key_rate_per_s: float = Field(default=2.0, gt=0)
    unknown_key_burst: int = Field(default=30, ge=1)
    # Per webhook: redeliver orders and test pings together.
    webhook_sends_rate_per_s: float = Field(default=1.0, gt=0)
    webhook_sends_burst: int = Field(default=10, ge=1)
    # Deno parses run at once on save, and how many may wait for one (then 503).
    code_checks_at_once: int = Field(default=2, ge=1)
    code_checks_queued: int = Field(default=8, ge=0)
    # The built web console (console/dist), served at /console/.
    console_dir: Path = DEFAULT_CONSOLE_DIR
    # Origins that may frame the customer portal's pages (space- or comma-separated); none:
    # no one may.
    portal_frame_ancestors: FrameAncestors = Field(default_factory=list)

    # Where customers reach this registry (portal links start with it), e.g.
    # https://hooks.example.com; None: http://<host>:<port>, 127.0.0.1 for a wildcard host.
    public_url: str | None = Field(default=None, pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$")

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
    def public_base_url(self) -> str:
        """The registry's URL as customers reach it, without a trailing slash."""
        if self.public_url:
            return self.public_url.rstrip("/")
        wildcard = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104 - mapped away
        host = wildcard.get(self.host, self.host)
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    @property
    def should_republish_on_start(self) -> bool:
        if self.republish_on_start is not None:
            return self.republish_on_start
        return self.runtime.profile is Profile.DEV
