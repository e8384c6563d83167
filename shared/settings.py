"""Settings shared by every service: profile, logging, Postgres and Kafka.

Each service nests these in its own `BaseSettings` with its own env prefix
(`ROOMHOOKS_REGISTRY_`, ...). The connection settings keep the conventional
unprefixed names (`DATABASE_URL`, `KAFKA_BOOTSTRAP_SERVERS`) so that one
`.roomhooks/run.env` serves the services, the CLI and a developer's shell.
Nothing else in the code base reads `os.environ`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BeforeValidator, Field, SecretStr
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def split_commas(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


# A list setting written `a,b,c` in the environment (not JSON).
CommaList = Annotated[list[str], NoDecode, BeforeValidator(split_commas)]


class Profile(StrEnum):
    DEV = "dev"
    PRODUCTION = "production"


class LogFormat(StrEnum):
    CONSOLE = "console"
    JSON = "json"


class RuntimeSettings(BaseSettings):
    """Who we are running as: the profile picks safe defaults for everything else."""

    model_config = SettingsConfigDict(env_prefix="ROOMHOOKS_", extra="ignore")

    profile: Profile = Profile.DEV
    log_level: str = "INFO"
    # None: readable console lines in dev, JSON lines in production.
    log_format: LogFormat | None = None

    @property
    def effective_log_format(self) -> LogFormat:
        if self.log_format is not None:
            return self.log_format
        return LogFormat.JSON if self.profile is Profile.PRODUCTION else LogFormat.CONSOLE


class SecretsSettings(BaseSettings):
    """The keys that seal webhook secrets at rest (shared/secrets_box.py).

    Read by the registry (seals) and delivery (opens). No default: `make run` generates a key
    and keeps it in `.roomhooks/run.env`; a service started without one refuses to start.
    """

    model_config = SettingsConfigDict(env_prefix="ROOMHOOKS_SECRETS_", extra="ignore")

    # Fernet keys, comma-separated, newest first: the first seals, every one opens.
    # SecretStr: never shown by a repr, a log line or a validation error.
    key: SecretStr | None = None


class PostgresSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ROOMHOOKS_PG_", extra="ignore", populate_by_name=True
    )

    url: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/roomhooks",
        validation_alias="DATABASE_URL",
    )
    pool_min_size: int = Field(default=1, ge=0)
    pool_max_size: int = Field(default=10, ge=1)
    command_timeout_s: float = Field(default=30.0, gt=0)


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KAFKA_", extra="ignore")

    bootstrap_servers: str = "127.0.0.1:9092"
    # Every topic and consumer group name starts with this: tests and side-by-side
    # deployments on one cluster each get their own.
    topic_namespace: str = Field(default="roomhooks", pattern=r"^[A-Za-z0-9._-]{1,100}$")
    partitions: int = Field(default=12, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    # Real Kafka: on. The dev broker (Tansu) cannot start an idempotent producer.
    idempotent_producer: bool = False
    # Tansu makes every group join wait session_timeout / 2: keep it short in dev.
    session_timeout_ms: int = Field(default=6000, ge=1000)
    request_timeout_ms: int = Field(default=30000, ge=1000)
    # How long a fetch may wait for data. Tansu answers a waiting fetch only when this runs
    # out, so each consume step costs about half of it (246 ms at Kafka's default of 500,
    # 7 ms at 20); on real Kafka it only paces idle polling.
    fetch_max_wait_ms: int = Field(default=20, ge=1, le=30000)
    # The dev broker (Tansu) can let a consumer skip a batch that two producers raced to
    # write; above 0, a consumer that meets a gap in a partition's offsets fetches again from
    # it for up to this long before it takes the gap as real (shared/offset_gaps.py). The
    # stacks that start Tansu turn it on; real Kafka: 0, its gaps are real.
    gap_recheck_ms: int = Field(default=0, ge=0, le=60000)
    client_id: str = "roomhooks"
