"""Settings shared by every service: profile, logging, Postgres and Kafka.

Each service nests these in its own `BaseSettings` with its own env prefix
(`ROOMHOOKS_REGISTRY_`, ...). The connection settings keep the conventional
unprefixed names (`DATABASE_URL`, `KAFKA_BOOTSTRAP_SERVERS`) so that one
`.roomhooks/run.env` serves the services, the CLI and a developer's shell.
Nothing else in the code base reads `os.environ`.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import BeforeValidator, Field, SecretStr, model_validator
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
    def production(self) -> bool:
        return self.profile is Profile.PRODUCTION

    @property
    def effective_log_format(self) -> LogFormat:
        if self.log_format is not None:
            return self.log_format
        return LogFormat.JSON if self.production else LogFormat.CONSOLE


class SecretsSettings(BaseSettings):
    """The keys that seal webhook secrets at rest (shared/secrets_box.py).

    Read by the registry (seals) and delivery (opens). No default: `make run` generates a key
    and keeps it in `.roomhooks/run.env`; a service started without one refuses to start.
    """

    # hide_input_in_errors: a refused setting's error must not print the secrets beside it.
    model_config = SettingsConfigDict(
        env_prefix="ROOMHOOKS_SECRETS_", extra="ignore", hide_input_in_errors=True
    )

    # Fernet keys, comma-separated, newest first: the first seals, every one opens.
    # SecretStr: never shown by a repr, a log line or a validation error.
    key: SecretStr | None = None


class PostgresSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ROOMHOOKS_PG_", extra="ignore", populate_by_name=True, hide_input_in_errors=True
    )

    url: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/roomhooks",
        validation_alias="DATABASE_URL",
    )
    pool_min_size: int = Field(default=1, ge=0)
    pool_max_size: int = Field(default=10, ge=1)
    command_timeout_s: float = Field(default=30.0, gt=0)
    # Apply the service's migrations when it starts (`make run`, the tests). Production: off,
    # and `python -m services.<name> migrate` runs as the owner role before the services start.
    migrate_on_start: bool = Field(default=True, validation_alias="ROOMHOOKS_MIGRATE_ON_START")
    # Events, deliveries, attempts, executions and the audit log older than this many days
    # are removed (shared/retention.py), every `retention_every_s`: by the service itself
    # when it migrates on start, else by `python -m services.<name> retention` as the owner.
    retention_days: int = Field(
        default=30, ge=1, le=3650, validation_alias="ROOMHOOKS_RETENTION_DAYS"
    )
    retention_every_s: float = Field(
        default=3600.0, gt=0, validation_alias="ROOMHOOKS_RETENTION_EVERY_S"
    )
    # For the migrate step only (shared/db_roles.py): each service's role is this prefix and
    # the schema it writes (`roomhooks_delivery`); passwords by schema, JSON
    # (`{"delivery": "..."}`): a role given one can log in with it.
    role_prefix: str = Field(default="roomhooks_", pattern=r"^[a-z_][a-z0-9_]{0,40}$")
    role_passwords: dict[str, SecretStr] = Field(default_factory=dict)


class KafkaSecurityProtocol(StrEnum):
    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"

    @property
    def uses_tls(self) -> bool:
        return self in (KafkaSecurityProtocol.SSL, KafkaSecurityProtocol.SASL_SSL)

    @property
    def uses_sasl(self) -> bool:
        return self in (KafkaSecurityProtocol.SASL_PLAINTEXT, KafkaSecurityProtocol.SASL_SSL)


class SaslMechanism(StrEnum):
    PLAIN = "PLAIN"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="KAFKA_", extra="ignore", hide_input_in_errors=True
    )

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
    # How often every producer and consumer reads the cluster's metadata again (Kafka's
    # default: 5 minutes). A topic a consumer's group was assigned without (it did not exist
    # when the group formed) is found only then. The dev broker loses its topics when it
    # restarts and the stack that restarts it creates them again: there it is a few seconds.
    metadata_max_age_ms: int = Field(default=300_000, ge=1000, le=3_600_000)
    client_id: str = "roomhooks"

    # How every client (producers, consumers, the admin) reaches the brokers.
    security_protocol: KafkaSecurityProtocol = KafkaSecurityProtocol.PLAINTEXT
    # TLS: the CA of the brokers' certificates (None: the system's CAs); a client certificate
    # and its key only for brokers that ask for one.
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None

    @model_validator(mode="after")
    def _security_is_whole(self) -> KafkaSettings:
        problems = kafka_security_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self


def kafka_security_problems(settings: KafkaSettings) -> list[str]:
    """What is missing or contradictory in the TLS and SASL settings, each naming its variable:
    refused at start rather than found at the first connection (or silently ignored)."""
    protocol = settings.security_protocol
    password = settings.sasl_password.get_secret_value() if settings.sasl_password else None
    sasl = {
        "KAFKA_SASL_MECHANISM": settings.sasl_mechanism,
        "KAFKA_SASL_USERNAME": settings.sasl_username,
        "KAFKA_SASL_PASSWORD": password,
    }
    files = {
        "KAFKA_SSL_CAFILE": settings.ssl_cafile,
        "KAFKA_SSL_CERTFILE": settings.ssl_certfile,
        "KAFKA_SSL_KEYFILE": settings.ssl_keyfile,
    }
    given = f"KAFKA_SECURITY_PROTOCOL is {protocol}"
    if protocol.uses_sasl:
        problems = [f"{name} is required when {given}" for name, v in sasl.items() if not v]
    else:
        problems = [
            f"{name} is set but {given} (SASL needs SASL_SSL or SASL_PLAINTEXT)"
            for name, v in sasl.items()
            if v
        ]
    for name, path in files.items():
        if path and not protocol.uses_tls:
            problems.append(f"{name} is set but {given} (TLS needs SSL or SASL_SSL)")
        elif path and not path.is_file():
            problems.append(f"{name}: no file at {path}")
    if settings.ssl_keyfile and not settings.ssl_certfile:
        problems.append("KAFKA_SSL_KEYFILE is set without KAFKA_SSL_CERTFILE")
    return problems
