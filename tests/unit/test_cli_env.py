"""The CLI's pure helpers: run.env, settings precedence, child env, log prefixes, restarts."""

from __future__ import annotations

import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devtool.cli_support import load_run_env, settings_with_fallback
from devtool.devstack import ServiceLayout, child_env, choose_port, redact_url
from devtool.keys import keys_table
from devtool.runenv import parse_run_env, render_run_env, saved_account
from devtool.supervisor import PALETTE, assign_colours, next_restart_delay, prefix_line
from services.registry.admin import ApiKey
from shared.settings import KafkaSettings, PostgresSettings

AWKWARD_VALUES = {
    "PLAIN": "127.0.0.1:9092",
    "SPACES": "a value with  spaces",
    "SINGLE_QUOTE": "it's here",
    "DOUBLE_QUOTE": 'say "hi"',
    "SHELL_CHARS": "$HOME `id` \\ ; & | *",
    "EMPTY": "",
    "URL": "postgresql://postgres:p@ss w'rd@/roomhooks?host=/tmp/pg data",
}


def test_run_env_round_trips_quotes_and_spaces() -> None:
    assert parse_run_env(render_run_env(AWKWARD_VALUES)) == AWKWARD_VALUES


def test_run_env_is_what_a_shell_sources(tmp_path: Path) -> None:
    path = tmp_path / "run.env"
    path.write_text(render_run_env(AWKWARD_VALUES))
    script = f". {path}; " + "; ".join(f'printf "%s\\0" "${name}"' for name in AWKWARD_VALUES)
    printed = subprocess.run(
        ["sh", "-c", script], capture_output=True, check=True, text=True
    ).stdout
    assert printed.split("\0")[:-1] == list(AWKWARD_VALUES.values())


def test_run_env_lines_are_exports() -> None:
    lines = render_run_env({"A": "x y"}).splitlines()
    assert lines[0].startswith("#")
    assert lines[1:] == ["export A='x y'"]


def test_parses_lines_with_and_without_export_and_skips_comments() -> None:
    text = "# saved\n\nexport A='1 2'\nB=plain  # trailing comment\nexport C=\"q\"\n"
    assert parse_run_env(text) == {"A": "1 2", "B": "plain", "C": "q"}


@pytest.mark.parametrize(
    ("text", "where"),
    [("export A='unterminated\n", "line 1"), ("A=1\njust words\n", "line 2")],
)
def test_a_malformed_line_is_reported_by_number(text: str, where: str) -> None:
    with pytest.raises(ValueError, match=where):
        parse_run_env(text)


def test_missing_run_env_reads_as_empty(tmp_path: Path) -> None:
    assert load_run_env(tmp_path / "nothing-here.env") == {}


def test_environment_wins_over_run_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "from-env:9092")
    monkeypatch.setenv("DATABASE_URL", "postgresql://env/db")
    saved = {"KAFKA_BOOTSTRAP_SERVERS": "from-file:9092", "DATABASE_URL": "postgresql://file/db"}
    environ = {"KAFKA_BOOTSTRAP_SERVERS": "from-env:9092", "DATABASE_URL": "postgresql://env/db"}

    assert settings_with_fallback(KafkaSettings, saved, environ).bootstrap_servers == (
        "from-env:9092"
    )
    assert settings_with_fallback(PostgresSettings, saved, environ).url == "postgresql://env/db"


def test_run_env_fills_what_the_environment_lacks(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "KAFKA_TOPIC_NAMESPACE", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAFKA_TOPIC_NAMESPACE", "mine")
    saved = {
        "KAFKA_BOOTSTRAP_SERVERS": "from-file:9092",
        "KAFKA_TOPIC_NAMESPACE": "theirs",
        "DATABASE_URL": "postgresql://file/db",
    }
    environ = {"KAFKA_TOPIC_NAMESPACE": "mine"}

    kafka = settings_with_fallback(KafkaSettings, saved, environ)
    assert (kafka.bootstrap_servers, kafka.topic_namespace) == ("from-file:9092", "mine")
    assert settings_with_fallback(PostgresSettings, saved, environ).url == "postgresql://file/db"


def test_children_get_the_parent_env_plus_the_stack_connections() -> None:
    parent = {"PATH": "/bin", "DATABASE_URL": "postgresql://old/db", "KAFKA_BOOTSTRAP_SERVERS": "x"}
    env = child_env(parent, database_url="postgresql://new/db", bootstrap_servers="127.0.0.1:1")
    assert env == {
        "PATH": "/bin",
        "DATABASE_URL": "postgresql://new/db",
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "ROOMHOOKS_PROFILE": "dev",
        "PYTHONUNBUFFERED": "1",
    }
    assert parent["DATABASE_URL"] == "postgresql://old/db"


def test_children_keep_a_profile_the_parent_chose() -> None:
    env = child_env({"ROOMHOOKS_PROFILE": "production"}, database_url="d", bootstrap_servers="b")
    assert env["ROOMHOOKS_PROFILE"] == "production"


def test_prefixes_lines_with_the_padded_name() -> None:
    assert prefix_line("broker", "ready", width=8) == "broker   | ready"
    assert prefix_line("registry", "", width=8) == "registry | "


def test_coloured_prefix_wraps_only_the_label() -> None:
    assert prefix_line("dev", "hi", width=3, colour="36") == "\x1b[36mdev |\x1b[0m hi"


def test_each_name_gets_its_own_colour() -> None:
    names = ["dev", "broker", "registry", "fanout", "delivery", "workflow_runner"]
    colours = assign_colours(names)
    assert set(colours) == set(names)
    assert len(set(colours.values())) == len(names)
    assert set(colours.values()) <= set(PALETTE)


def test_restart_delay_doubles_from_one_to_ten_seconds() -> None:
    delays, delay = [], None
    for _ in range(6):
        delay = next_restart_delay(delay, ran_for_s=0.5)
        delays.append(delay)
    assert delays == [1, 2, 4, 8, 10, 10]


def test_restart_delay_starts_over_after_a_stable_run() -> None:
    assert next_restart_delay(8.0, ran_for_s=3600) == 1


def test_keeps_a_free_preferred_port_and_replaces_a_busy_one() -> None:
    assert choose_port(9092, is_free=lambda _p: True, pick_free=lambda: 40000) == 9092
    assert choose_port(9092, is_free=lambda _p: False, pick_free=lambda: 40000) == 40000


def test_redacts_only_the_password() -> None:
    assert redact_url("postgresql://u:secret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact_url("postgresql://u@h/db?host=/tmp") == "postgresql://u@h/db?host=/tmp"


def test_finds_runnable_services_and_schemas(tmp_path: Path) -> None:
    for name, files in {
        "registry": ["__main__.py", "migrations/0001_init.sql"],
        "fanout": ["__main__.py"],
        "delivery": ["migrations/0001_init.sql"],
        "__pycache__": ["x.pyc"],
    }.items():
        for file in files:
            (tmp_path / name / file).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name / file).write_text("")
    layout = ServiceLayout.scan(tmp_path)
    assert layout.runnable == ["fanout", "registry"]
    assert layout.with_migrations == ["delivery", "registry"]


def test_the_account_comes_from_the_environment_before_run_env() -> None:
    saved = {"ROOMHOOKS_ACCOUNT_ID": "from-file"}
    assert saved_account({"ROOMHOOKS_ACCOUNT_ID": "from-env"}, saved) == "from-env"
    assert saved_account({}, saved) == "from-file"
    assert saved_account({"ROOMHOOKS_ACCOUNT_ID": ""}, {}) is None


def test_keys_are_listed_in_aligned_columns_with_dashes_for_none() -> None:
    at = datetime(2026, 5, 1, 12, 0, 30, 500, tzinfo=UTC)
    key = ApiKey(
        id=uuid.UUID(int=7),
        account_id=uuid.UUID(int=1),
        role="OWNER",
        label="ci bot",
        token_prefix="rhk_AbCdEf",
        created_at=at,
        expires_at=None,
        last_used_at=at,
        revoked_at=None,
    )
    header, line = keys_table([key]).splitlines()
    assert header.index("ROLE") == line.index("OWNER")
    assert line.split() == [
        str(key.id),
        "OWNER",
        "rhk_AbCd",
        "2026-05-01T12:00:30Z",
        "2026-05-01T12:00:30Z",
        "-",
        "-",
        "ci",
        "bot",
    ]
