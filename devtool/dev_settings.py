"""What the CLI needs to find the dev stack's saved state without loading the stack itself:
its settings (where run.env is) and how it shows URLs. `devtool.devstack` runs the stack;
every command imports this instead, so a command that only calls the API stays quick."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

RUN_ENV_FILE = "run.env"
LOOPBACK = "127.0.0.1"


class DevSettings(BaseSettings):
    """The dev stack's own knobs; the services keep their own settings (passed through env)."""

    model_config = SettingsConfigDict(
        env_prefix="ROOMHOOKS_DEV_", extra="ignore", env_ignore_empty=True
    )

    # Relative to the working directory: pgdata, run.env.
    state_dir: Path = Path(".roomhooks")
    # The broker's port; when busy, a free one is picked (and said).
    kafka_port: int = Field(default=9092, ge=1, le=65535)
    # Partitions of every topic on the broker the stack starts itself (KAFKA_PARTITIONS
    # applies to a broker you name). Tansu scans every batch a partition has stored on each
    # fetch of it, and a producer stores a batch per partition it writes to, so its CPU grows
    # with partitions times traffic: 3 instead of 12 halved it, and 1 instead of 3 halved it again
    # (one reader of 1,000 events/s: 30 % of a core against 56 %). One process per service
    # reads one partition; raise this to run several replicas of a service on the stack.
    broker_partitions: int = Field(default=1, ge=1)
    # How long every service has to answer GET /readyz with 200.
    ready_timeout_s: float = Field(default=60.0, gt=0)
    # As Kubernetes' terminationGracePeriodSeconds: delivery's shutdown grace fits inside it.
    stop_timeout_s: float = Field(default=30.0, gt=0)
    # The server tried before starting an embedded one (point it elsewhere to skip it). With no
    # database in it, the checkout's own (devtool.postgres.choose_database); one named is used.
    local_postgres_url: str = "postgresql://postgres@127.0.0.1:5432"
    # Connections the environment already names: used as they are, nothing started for them.
    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    kafka_bootstrap_servers: str | None = Field(
        default=None, validation_alias="KAFKA_BOOTSTRAP_SERVERS"
    )

    @property
    def run_env_path(self) -> Path:
        return self.state_dir / RUN_ENV_FILE


def api_url(host: str, port: int) -> str:
    shown = LOOPBACK if host in ("", "0.0.0.0", "::") else host  # noqa: S104 - only displayed
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def redact_url(url: str) -> str:
    """The URL with any password replaced by `***`, for showing it."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
