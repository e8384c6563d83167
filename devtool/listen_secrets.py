"""The secrets `roomhooks listen` verifies with: a file read again whenever it changes, the
environment, and `--secret` (visible to other users, so only with a warning).

A delivery verifies when any live secret verifies it: one secret per webhook listened for,
two during a rotation. A secret is never printed, only where it came from.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from devtool.cli_support import CliError
from shared.signing import check_secret

ENV_NAME = "ROOMHOOKS_LISTEN_SECRETS"
# A secrets file is a few lines; past this it is not one.
FILE_MAX_BYTES = 1024 * 1024
NO_SECRET = (
    "no webhook secret: give --secret-file PATH (one secret per line, re-read when it changes),"
    f" set {ENV_NAME} (comma- or space-separated), or --secret S"
)
CLI_SECRET_WARNING = (
    "roomhooks: warning: --secret is visible to other users of this machine (ps, /proc);"
    f" use --secret-file PATH or {ENV_NAME} instead"
)

Warn = Callable[[str], None]


@dataclass(frozen=True)
class ParsedSecrets:
    """A secrets text read: the good secrets in order, and a reason for each bad line."""

    secrets: tuple[str, ...]
    problems: tuple[str, ...]


def parse_secrets_text(text: str) -> ParsedSecrets:
    """One secret per line; blank lines and `#` comments skipped, spaces around trimmed.
    A bad line is named by its number, never by its content (it may be a secret)."""
    secrets: list[str] = []
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        candidate = line.strip()
        if not candidate or candidate.startswith("#"):
            continue
        try:
            secrets.append(check_secret(candidate))
        except ValueError as exc:
            problems.append(f"line {number}: {exc}")
    return ParsedSecrets(tuple(dict.fromkeys(secrets)), tuple(problems))


def parse_env_secrets(value: str) -> tuple[str, ...]:
    """`ROOMHOOKS_LISTEN_SECRETS`: secrets separated by commas or whitespace; ValueError naming
    the bad entry by its position."""
    secrets = []
    for position, candidate in enumerate((s for s in re.split(r"[\s,]+", value) if s), 1):
        try:
            secrets.append(check_secret(candidate))
        except ValueError as exc:
            raise ValueError(f"entry {position} {exc}") from None
    return tuple(secrets)


def readable_by_others(mode: int) -> bool:
    return bool(mode & (stat.S_IRWXG | stat.S_IRWXO))


class SecretFile:
    """The secrets of one file, read again when its mtime, size or inode changes (checked on
    each request: a stat), so a new webhook's secret or a rotation needs no restart.

    Each change is reported; its good lines are used and each bad one named. A file that
    cannot be read keeps the secrets read before, and says so once."""

    def __init__(self, path: Path, *, warn: Warn) -> None:
        self.path = path
        self._warn = warn
        self._stamp: tuple[int, int, int] | None = None
        self._secrets: tuple[str, ...] = ()
        self._unreadable: str | None = None

    def load(self) -> ParsedSecrets:
        """The first read; OSError or ValueError when the file is missing or not text."""
        status = self.path.stat()
        parsed = self._read(status)
        self._stamp, self._secrets = _stamp(status), parsed.secrets
        return parsed

    def current(self) -> tuple[str, ...]:
        try:
            status = self.path.stat()
            if _stamp(status) != self._stamp:
                parsed = self._read(status)
                self._stamp, self._secrets = _stamp(status), parsed.secrets
                self._unreadable = None
                for line in (f"read again: {len(parsed.secrets)} secret(s)", *parsed.problems):
                    self._say(line)
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            if reason != self._unreadable:
                self._unreadable = reason
                self._say(f"cannot be read ({reason}); keeping the secrets read before")
        return self._secrets

    def _read(self, status: os.stat_result) -> ParsedSecrets:
        if status.st_size > FILE_MAX_BYTES:
            raise ValueError(f"is over {FILE_MAX_BYTES} bytes: not a secrets file")
        try:
            return parse_secrets_text(self.path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise ValueError("is not UTF-8 text") from None

    def _say(self, line: str) -> None:
        self._warn(f"roomhooks: listen: {self.path}: {line}")


def _stamp(status: os.stat_result) -> tuple[int, int, int]:
    return status.st_mtime_ns, status.st_size, status.st_ino


@dataclass
class Secrets:
    """Every live secret: the fixed ones (environment, `--secret`) and the file's as it is now."""

    fixed: tuple[str, ...] = ()
    file: SecretFile | None = None
    sources: tuple[str, ...] = ()

    def live(self) -> tuple[str, ...]:
        from_file = self.file.current() if self.file is not None else ()
        return tuple(dict.fromkeys((*self.fixed, *from_file)))


def gather_secrets(
    *,
    cli: Sequence[str],
    env_value: str | None,
    file: Path | None,
    warn: Warn,
) -> Secrets:
    """The three sources together; CliError (exit 2) for a bad secret or when none is given."""
    if file is None and env_value is None and not cli:
        raise CliError(NO_SECRET)
    if cli:
        warn(CLI_SECRET_WARNING)
    try:
        from_env = parse_env_secrets(env_value or "")
    except ValueError as exc:
        raise CliError(f"{ENV_NAME}: {exc}") from None
    if env_value is not None and not from_env and file is None and not cli:
        raise CliError(f"{ENV_NAME} is empty; {NO_SECRET}")
    sources = [f"{len(cli)} from --secret"] if cli else []
    if from_env:
        sources.append(f"{len(from_env)} from {ENV_NAME}")
    secret_file = _open_secret_file(file, warn) if file is not None else None
    if secret_file is not None:
        count = len(secret_file.current())
        sources.append(f"{count} from {file} (read again when it changes)")
    return Secrets((*cli, *from_env), secret_file, tuple(sources))


def _open_secret_file(path: Path, warn: Warn) -> SecretFile:
    secret_file = SecretFile(path, warn=warn)
    try:
        parsed = secret_file.load()
    except OSError as exc:
        raise CliError(f"--secret-file: cannot read {path} ({exc.strerror})") from None
    except ValueError as exc:
        raise CliError(f"--secret-file: {path} {exc}") from None
    if parsed.problems:
        raise CliError(f"--secret-file: {path}: {parsed.problems[0]}")
    if readable_by_others(path.stat().st_mode):
        warn(f"roomhooks: warning: other users can read {path}; chmod 600 {path}")
    if not parsed.secrets:
        warn(
            f"roomhooks: listen: {path} holds no secret yet: deliveries get 401 until one is"
            " added (the file is read again when it changes)"
        )
    return secret_file
