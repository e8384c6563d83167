"""Where `roomhooks listen` takes its secrets: a file read again when it changes, the
environment, `--secret` with a warning; none at all is an error naming the three ways."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devtool.cli_support import CliError
from devtool.listen_secrets import (
    ENV_NAME,
    SecretFile,
    gather_secrets,
    parse_env_secrets,
    parse_secrets_text,
    readable_by_others,
)
from shared.signing import new_secret

A, B, C = new_secret(), new_secret(), new_secret()
WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_a_secrets_text_skips_blank_lines_and_comments_and_trims_spaces():
    parsed = parse_secrets_text(f"# staging\n{A}\n\n   {B}  \n  # old: {C}\n{WHSEC}\n")
    assert parsed.secrets == (A, B, WHSEC) and parsed.problems == ()


def test_a_bad_line_is_named_by_its_number_and_never_shown():
    parsed = parse_secrets_text(f"{A}\nhunter2\n{A}\n")
    assert parsed.secrets == (A,)
    assert parsed.problems == (
        "line 2: must be 64 lowercase hex characters or a Standard Webhooks secret (whsec_ and"
        " the key in base64)",
    )


@pytest.mark.parametrize("value", [f"{A},{B}", f"{A} {B}", f" {A} ,\n{B}, ", f"{A}\t{B}"])
def test_the_environment_takes_secrets_separated_by_commas_or_whitespace(value):
    assert parse_env_secrets(value) == (A, B)


def test_a_bad_environment_entry_is_named_by_its_position():
    with pytest.raises(ValueError, match=r"^entry 2 must be 64 lowercase hex"):
        parse_env_secrets(f"{A},nope")


def test_no_source_at_all_is_an_error_naming_the_three_ways():
    with pytest.raises(CliError) as raised:
        gather_secrets(cli=[], env_value=None, file=None, warn=print)
    message = raised.value.message
    assert raised.value.code == 2
    assert "--secret-file PATH" in message and ENV_NAME in message and "--secret S" in message


def test_an_empty_environment_alone_is_no_secret():
    with pytest.raises(CliError, match=f"{ENV_NAME} is empty"):
        gather_secrets(cli=[], env_value=" , ", file=None, warn=print)


def test_secret_on_the_command_line_works_with_a_warning_naming_the_safer_ways():
    warnings: list[str] = []
    secrets = gather_secrets(cli=[A], env_value=None, file=None, warn=warnings.append)
    assert secrets.live() == (A,)
    assert len(warnings) == 1
    assert "visible to other users" in warnings[0] and "--secret-file" in warnings[0]


def test_every_source_counts_and_duplicates_are_dropped(tmp_path: Path):
    file = tmp_path / "secrets"
    file.write_text(f"{C}\n{A}\n")
    file.chmod(0o600)
    warnings: list[str] = []
    secrets = gather_secrets(cli=[A], env_value=f"{B}", file=file, warn=warnings.append)
    assert secrets.live() == (A, B, C)
    assert secrets.sources == (
        "1 from --secret",
        f"1 from {ENV_NAME}",
        f"2 from {file} (read again when it changes)",
    )


def test_a_missing_file_is_an_error(tmp_path: Path):
    with pytest.raises(CliError, match=r"--secret-file: cannot read .*No such file"):
        gather_secrets(cli=[], env_value=None, file=tmp_path / "absent", warn=print)


def test_a_bad_line_in_the_file_at_start_is_an_error_naming_the_line(tmp_path: Path):
    file = tmp_path / "secrets"
    file.write_text(f"{A}\n\nwhsec_!!\n")
    with pytest.raises(CliError, match=r"--secret-file: .*secrets: line 3: is not valid base64"):
        gather_secrets(cli=[], env_value=None, file=file, warn=print)


def test_an_empty_file_starts_with_a_warning_that_deliveries_get_401_until_a_secret_is_added(
    tmp_path: Path,
):
    file = tmp_path / "secrets"
    file.write_text("# the staging webhook's secret goes here\n")
    file.chmod(0o600)
    warnings: list[str] = []
    secrets = gather_secrets(cli=[], env_value=None, file=file, warn=warnings.append)
    assert secrets.live() == ()
    assert warnings == [
        f"roomhooks: listen: {file} holds no secret yet: deliveries get 401 until one is added"
        " (the file is read again when it changes)"
    ]


def test_a_file_other_users_can_read_gets_a_warning(tmp_path: Path):
    file = tmp_path / "secrets"
    file.write_text(f"{A}\n")
    file.chmod(0o644)
    warnings: list[str] = []
    gather_secrets(cli=[], env_value=None, file=file, warn=warnings.append)
    assert warnings == [f"roomhooks: warning: other users can read {file}; chmod 600 {file}"]
    assert not readable_by_others(0o100600) and readable_by_others(0o100640)


def bump(path: Path, text: str) -> None:
    """Write `text` and move the mtime on, as an editor saving a second later would."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    os.utime(path, ns=(before + 1_000_000_000, before + 1_000_000_000))


def test_the_file_is_read_again_when_it_changes_and_only_then(tmp_path: Path):
    path = tmp_path / "secrets"
    path.write_text(f"{A}\n")
    warnings: list[str] = []
    file = SecretFile(path, warn=warnings.append)
    file.load()
    assert file.current() == (A,) and warnings == []
    bump(path, f"{A}\n{B}\n")
    assert file.current() == (A, B)
    assert warnings == [f"roomhooks: listen: {path}: read again: 2 secret(s)"]
    assert file.current() == (A, B) and len(warnings) == 1


def test_a_file_replaced_by_rename_is_read_again(tmp_path: Path):
    path = tmp_path / "secrets"
    path.write_text(f"{A}\n")
    file = SecretFile(path, warn=lambda _: None)
    file.load()
    replacement = tmp_path / "secrets.new"
    replacement.write_text(f"{B}\n")
    replacement.replace(path)
    assert file.current() == (B,)


def test_a_bad_line_after_a_change_is_reported_and_the_good_lines_used(tmp_path: Path):
    path = tmp_path / "secrets"
    path.write_text(f"{A}\n")
    warnings: list[str] = []
    file = SecretFile(path, warn=warnings.append)
    file.load()
    bump(path, f"{B}\noops\n")
    assert file.current() == (B,)
    assert warnings[-1].startswith(f"roomhooks: listen: {path}: line 2: must be 64 lowercase")


def test_a_file_that_disappears_keeps_the_secrets_read_before_and_says_so_once(tmp_path: Path):
    path = tmp_path / "secrets"
    path.write_text(f"{A}\n")
    warnings: list[str] = []
    file = SecretFile(path, warn=warnings.append)
    file.load()
    path.unlink()
    assert file.current() == (A,) and file.current() == (A,)
    assert warnings == [
        f"roomhooks: listen: {path}: cannot be read (No such file or directory);"
        " keeping the secrets read before"
    ]
    bump(path, f"{B}\n")
    assert file.current() == (B,)
