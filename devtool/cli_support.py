"""What every `roomhooks` command shares: the error that ends it (one line, an exit code),
connections and the default account from the environment or run.env, a Postgres pool, and
argument types.

Bad input exits 2 and an unreachable Postgres or broker exits 1, each with one line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar
from uuid import UUID

from pydantic_settings import BaseSettings

from devtool.dev_settings import DevSettings, redact_url
from devtool.runenv import ACCOUNT_SETTING, parse_run_env, saved_account
from shared.settings import KafkaSettings, PostgresSettings

if TYPE_CHECKING:
    import asyncpg

EXIT_UNAVAILABLE = 1
EXIT_USAGE = 2
POSTGRES_TIMEOUT_S = 15.0

S = TypeVar("S", bound=BaseSettings)


class CliError(Exception):
    """Ends the command with `roomhooks: error: <message>` and `code`."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def one_line(exc: BaseException) -> str:
    """`Type: message` on one line, for error messages (aiokafka's already name their type)."""
    name = type(exc).__name__
    text = " ".join(str(exc).split())
    return text if text.startswith(name) else f"{name}: {text}" if text else name


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line: `roomhooks: error: ...`, exit 2."""

    def error(self, message: str) -> NoReturn:
        raise CliError(message.removeprefix("argument "))


# --- run.env and settings ------------------------------------------------------------------


def load_run_env(path: Path) -> dict[str, str]:
    """The variables a `roomhooks dev` run saved in `path`; {} when there is no such file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise CliError(f"{path}: {exc.strerror}") from None
    try:
        return parse_run_env(text)
    except ValueError as exc:
        raise CliError(f"{path}: {exc}") from None


def settings_with_fallback(
    cls: type[S], fallback: Mapping[str, str], environ: Mapping[str, str]
) -> S:
    """`cls()` from the environment, taking from `fallback` what the environment lacks."""
    present = {name.upper() for name in environ}
    available = {name.upper(): value for name, value in fallback.items()}
    prefix = str(cls.model_config.get("env_prefix", ""))
    overrides: dict[str, Any] = {}
    for field_name, info in cls.model_fields.items():
        alias = info.validation_alias if isinstance(info.validation_alias, str) else None
        env_name = (alias or f"{prefix}{field_name}").upper()
        if env_name in available and env_name not in present:
            overrides[alias or field_name] = available[env_name]
    return cls(**overrides)


def connections(environ: Mapping[str, str]) -> tuple[PostgresSettings, KafkaSettings]:
    saved = load_run_env(DevSettings().run_env_path)
    return (
        settings_with_fallback(PostgresSettings, saved, environ),
        settings_with_fallback(KafkaSettings, saved, environ),
    )


def default_account(given: UUID | None, environ: Mapping[str, str]) -> UUID:
    """`--account`, else the account `roomhooks dev` saved (environment first, then run.env);
    neither is bad input (exit 2) naming `--account`."""
    if given is not None:
        return given
    path = DevSettings().run_env_path
    saved = saved_account(environ, load_run_env(path))
    if saved is None:
        raise CliError(f"--account is required (no {ACCOUNT_SETTING} in the environment or {path})")
    try:
        return UUID(saved)
    except ValueError:
        raise CliError(f"{ACCOUNT_SETTING}: {saved!r} is not a UUID") from None


def add_account_option(parser: argparse.ArgumentParser) -> None:
    """`--account ID`, defaulting (at run time, through default_account) to the saved one."""
    parser.add_argument(
        "--account",
        type=account_id,
        metavar="ID",
        help=f"the account (default: {ACCOUNT_SETTING} from the environment or run.env)",
    )


def account_id(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a UUID") from None


@contextlib.asynccontextmanager
async def postgres_pool(settings: PostgresSettings) -> AsyncIterator[asyncpg.Pool]:
    """A small pool; an unreachable or unmigrated Postgres ends the command with exit 1."""
    # Here, as every client library: a command's help and its bad input answer without
    # loading any (devtool/main.py).
    import asyncpg

    from devtool.postgres import UNREACHABLE
    from shared.db import create_pool

    where = redact_url(settings.url)
    try:
        async with asyncio.timeout(POSTGRES_TIMEOUT_S):
            pool = await create_pool(
                settings.model_copy(update={"pool_min_size": 1, "pool_max_size": 2})
            )
    except UNREACHABLE as exc:
        raise CliError(
            f"cannot reach Postgres at {where} ({one_line(exc)})", EXIT_UNAVAILABLE
        ) from None
    try:
        yield pool
    except asyncpg.UndefinedTableError:
        raise CliError(
            f"Postgres at {where} has no registry tables: run `roomhooks dev` once to create them",
            EXIT_UNAVAILABLE,
        ) from None
    finally:
        await pool.close()
