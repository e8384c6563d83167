"""`roomhooks dev` (`make run`): the whole platform on one machine, in the foreground.

Starts the broker (devtool.broker; unless KAFKA_BOOTSTRAP_SERVERS names one), chooses Postgres
and the checkout's database (devtool.postgres), migrates every service's schema, creates the
topics, keeps or mints a development account (saved in run.env: devtool.runenv), runs every
service as its own process with prefixed log lines (devtool.supervisor), says it is ready once
every service answers /readyz (devtool.readiness), and on SIGINT/SIGTERM stops them all. Pure
helpers come first; the stack below them.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TextIO

import structlog
from aiokafka.errors import KafkaError

from devtool.banner import StackFacts, banner
from devtool.broker import TANSU_GAP_RECHECK_MS, TANSU_METADATA_MAX_AGE_MS, tansu_command
from devtool.cli_support import one_line
from devtool.dev_settings import RUN_ENV_FILE as RUN_ENV_FILE
from devtool.dev_settings import DevSettings as DevSettings
from devtool.dev_settings import api_url as api_url
from devtool.dev_settings import redact_url as redact_url
from devtool.ports import LOOPBACK, any_free_port, port_is_free, wait_for_port
from devtool.postgres import (
    SHARED_DATABASE,
    ChosenPostgres,
    PostgresUnavailable,
    choose_database,
    choose_postgres,
    database_exists,
    database_in,
    dev_account,
    migrate_all,
    reannounce_registry,
    shared_database_note,
)
from devtool.readiness import (
    ProbeAddress,
    probe_address,
    probe_notes,
    readyz_urls,
    wait_until_every_service_ready,
)
from devtool.runenv import parse_run_env, render_run_env, write_private_file
from devtool.supervisor import ChildSpec, DevStackError, PrefixedOutput, Supervisor
from shared.db import with_database
from shared.kafka import Topics, ensure_topics
from shared.secrets_box import KEY_SETTING, generate_key, key_id
from shared.settings import KafkaSettings

log = structlog.get_logger(__name__)

# --- pure helpers --------------------------------------------------------------------------


def child_env(
    parent: Mapping[str, str],
    *,
    database_url: str,
    bootstrap_servers: str,
    probes: Sequence[ProbeAddress] = (),
) -> dict[str, str]:
    """What every service process gets: the parent env plus the stack's connections and the
    probe server ports it gave the services."""
    env = dict(parent)
    env["DATABASE_URL"] = database_url
    env["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap_servers
    env.setdefault("ROOMHOOKS_PROFILE", "dev")
    env["PYTHONUNBUFFERED"] = "1"
    env.update({probe.setting: str(probe.port) for probe in probes})
    return env


def choose_secrets_key(
    environ: Mapping[str, str], previous: Mapping[str, str], generate: Callable[[], str]
) -> str:
    """The key that seals webhook secrets: the environment's, else the one the last run saved
    (the database still holds secrets sealed with it), else a new one."""
    return environ.get(KEY_SETTING) or previous.get(KEY_SETTING) or generate()


def choose_port(
    preferred: int, *, is_free: Callable[[int], bool], pick_free: Callable[[], int]
) -> int:
    """`preferred` when free, else whatever `pick_free` finds."""
    return preferred if is_free(preferred) else pick_free()


@dataclass(frozen=True)
class ServiceLayout:
    """What lives under `services/`: runnable services and the schemas they own."""

    runnable: list[str]
    with_migrations: list[str]

    @classmethod
    def scan(cls, root: Path) -> ServiceLayout:
        folders = sorted(p for p in root.iterdir() if p.is_dir() and p.name.isidentifier())
        return cls(
            runnable=[p.name for p in folders if (p / "__main__.py").is_file()],
            with_migrations=[p.name for p in folders if (p / "migrations").is_dir()],
        )


def services_root() -> Path:
    return Path(str(resources.files("services")))


# --- the stack -----------------------------------------------------------------------------


class DevStack:
    """One `roomhooks dev` run: start everything, serve until a signal, stop everything."""

    def __init__(
        self,
        settings: DevSettings,
        *,
        api_host: str,
        api_port: int,
        environ: Mapping[str, str],
        stdout: TextIO = sys.stdout,
    ) -> None:
        self._settings = settings
        self._api_host = api_host
        self._api_port = api_port
        self._api_url = api_url(api_host, api_port)
        self._environ = dict(environ)
        self._stdout = stdout
        self._layout = ServiceLayout.scan(services_root())
        starts_broker = settings.kafka_bootstrap_servers is None
        names = ["dev", *(["broker"] if starts_broker else []), *self._layout.runnable]
        self._output = PrefixedOutput(names, stdout, colour=stdout.isatty())
        self._supervisor = Supervisor(self._output, stop_timeout_s=settings.stop_timeout_s)
        self._postgres: ChosenPostgres | None = None
        self._probes: list[ProbeAddress] = []

    async def run(self) -> int:
        """Exit code: 0 after a signal stopped everything, 1 when the stack could not start."""
        if not port_is_free(self._api_host, self._api_port):
            return self._fail(
                f"port {self._api_port} on {self._api_host} is in use: stop what holds it or"
                " set ROOMHOOKS_REGISTRY_PORT to a free port"
            )
        try:
            self._probes = self._probe_addresses()
        except DevStackError as exc:
            return self._fail(str(exc))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        # Installed for the whole run: a second Ctrl-C must not cut the clean-up short.
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            starting = asyncio.create_task(self._start(), name="dev-start")
            stopped = asyncio.create_task(stop.wait(), name="dev-stop")
            await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not starting.done():
                starting.cancel()
            try:
                await starting
            except asyncio.CancelledError:
                pass
            except (DevStackError, PostgresUnavailable) as exc:
                return self._fail(str(exc))
            except Exception:  # the one broad except: say what broke, then clean up
                log.exception("dev.start_failed")
                return 1
            await stopped
            log.info("dev.stopping")
            return 0
        finally:
            await self._close()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    async def _start(self) -> None:
        settings = self._settings
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        bootstrap = settings.kafka_bootstrap_servers or await self._start_broker()
        previous = self._previous_run_env()
        postgres, notes = await self._choose_postgres(previous)
        database_url = postgres.url
        await migrate_all(database_url, self._layout.with_migrations)
        try:
            await ensure_topics(self._kafka(bootstrap))
        except KafkaError as exc:
            raise DevStackError(f"cannot reach Kafka at {bootstrap} ({one_line(exc)})") from exc
        account, reused = await dev_account(database_url, previous)
        secrets_key = choose_secrets_key(self._environ, previous, generate_key)
        values = {
            "ROOMHOOKS_API_URL": self._api_url,
            "ROOMHOOKS_ACCOUNT_ID": account.account_id,
            "ROOMHOOKS_OWNER_TOKEN": account.owner_token,
            "ROOMHOOKS_MEMBER_TOKEN": account.member_token,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "DATABASE_URL": database_url,
            # The services need it to seal and open webhook secrets: keep it (0600).
            KEY_SETTING: secrets_key,
        }
        write_private_file(settings.run_env_path, render_run_env(values))

        env = self._service_env(database_url, bootstrap, secrets_key)
        for name in self._layout.runnable:
            argv = [sys.executable, "-m", f"services.{name}"]
            await self._supervisor.start(ChildSpec(name, argv, env))

        log.info("dev.secrets_key", key_id=key_id(secrets_key.split(",")[0].strip()))
        await wait_until_every_service_ready(
            readyz_urls(self._api_url, self._probes), timeout_s=settings.ready_timeout_s
        )
        facts = StackFacts(
            api_url=self._api_url,
            account=account,
            account_reused=reused,
            bootstrap=bootstrap,
            postgres=redact_url(database_url),
            postgres_source=postgres.source,
            database=database_in(database_url) or "postgres",
            database_notes=notes,
            run_env=settings.run_env_path,
        )
        self._print(banner(facts))

    def _service_env(self, database_url: str, bootstrap: str, secrets_key: str) -> dict[str, str]:
        env = child_env(
            self._environ,
            database_url=database_url,
            bootstrap_servers=bootstrap,
            probes=self._probes,
        )
        env[KEY_SETTING] = secrets_key
        if self._settings.kafka_bootstrap_servers is None:  # our own broker: its partitions, race
            env["KAFKA_PARTITIONS"] = str(self._settings.broker_partitions)
            env["KAFKA_GAP_RECHECK_MS"] = str(TANSU_GAP_RECHECK_MS)
            env["KAFKA_METADATA_MAX_AGE_MS"] = str(TANSU_METADATA_MAX_AGE_MS)
        return env

    def _probe_addresses(self) -> list[ProbeAddress]:
        """Each service's probe server port (all but the registry's, which is its API)."""
        probes = [
            probe_address(name, self._environ, is_free=port_is_free, pick_free=any_free_port)
            for name in self._layout.runnable
            if name != "registry"
        ]
        for line in probe_notes(probes):
            self._output.write("dev", line)
        return probes

    async def _choose_postgres(
        self, previous: Mapping[str, str]
    ) -> tuple[ChosenPostgres, list[str]]:
        """The server and database, and what the banner says of the database."""
        settings = self._settings
        choice = choose_database(
            named=database_in(settings.local_postgres_url),
            previous=database_in(previous.get("DATABASE_URL")),
            state_dir=str(settings.state_dir.resolve()),
        )
        self._postgres = chosen = await choose_postgres(
            database_url=settings.database_url,
            local_url=settings.local_postgres_url,
            database=choice.name,
            pgdata=settings.state_dir.resolve() / "pgdata",
        )
        if chosen.source == "DATABASE_URL":
            return chosen, ["named in DATABASE_URL"]
        # The embedded server's data is this state folder's alone: only the local one can
        # hold the database all checkouts shared before.
        shared = chosen.source == "local server" and await database_exists(
            chosen.url, SHARED_DATABASE
        )
        shared_url = redact_url(with_database(chosen.url, SHARED_DATABASE))
        note = shared_database_note(choice, shared_exists=shared, shared_url=shared_url)
        return chosen, [choice.why, *([note] if note else [])]

    def _kafka(self, bootstrap: str) -> KafkaSettings:
        if self._settings.kafka_bootstrap_servers is not None:
            return KafkaSettings(bootstrap_servers=bootstrap)
        return KafkaSettings(
            bootstrap_servers=bootstrap, partitions=self._settings.broker_partitions
        )

    async def _start_broker(self) -> str:
        wanted = self._settings.kafka_port
        port = choose_port(
            wanted, is_free=lambda p: port_is_free(LOOPBACK, p), pick_free=any_free_port
        )
        if port != wanted:
            self._output.write("dev", f"port {wanted} is busy; the broker listens on {port}")
        bootstrap = f"{LOOPBACK}:{port}"
        kafka = self._kafka(bootstrap)

        async def recreate_topics() -> None:
            # Tansu keeps topics in memory: a restarted broker has none, so the stack that
            # restarted it creates them again and has the registry announce every
            # subscription again (a fanout starting later reads them from the topic).
            await wait_for_port(LOOPBACK, port, timeout_s=30)
            await ensure_topics(kafka)
            if self._postgres is not None:
                await reannounce_registry(self._postgres.url, Topics.from_settings(kafka))

        argv = tansu_command(LOOPBACK, port)
        await self._supervisor.start(
            ChildSpec("broker", argv, self._environ, after_restart=recreate_topics)
        )
        await wait_for_port(LOOPBACK, port, timeout_s=30)
        return bootstrap

    def _previous_run_env(self) -> dict[str, str]:
        path = self._settings.run_env_path
        try:
            return parse_run_env(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("dev.run_env_unreadable", path=str(path), error=str(exc))
            return {}

    async def _close(self) -> None:
        # Services first (they flush to the broker and Postgres), then the broker, then Postgres.
        await self._supervisor.stop(self._layout.runnable)
        await self._supervisor.stop()
        if self._postgres is not None:
            await self._postgres.close()
        log.info("dev.stopped")

    def _print(self, text: str) -> None:
        with contextlib.suppress(BrokenPipeError, ValueError):
            self._stdout.write(text + "\n")
            self._stdout.flush()

    def _fail(self, message: str) -> int:
        print(f"roomhooks: error: {message}", file=sys.stderr, flush=True)
        return 1


def run(settings: DevSettings, *, api_host: str, api_port: int, environ: Mapping[str, str]) -> int:
    """The `roomhooks dev` command; returns the exit code."""
    stack = DevStack(settings, api_host=api_host, api_port=api_port, environ=environ)
    return asyncio.run(stack.run())
