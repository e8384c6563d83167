"""Commands that only call the API do not pay for importing the dev stack or the registry; the
parser, `--help` and bad input load no client library; and what the CLI copies from the
registry to stay quick still matches it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from devtool.keys import ROLES
from services.registry import admin as registry_admin

# A fifth of a second each, or so: the handlers that use them import them.
CLIENT_LIBRARIES = ("aiohttp", "asyncpg", "aiokafka", "structlog", "cryptography")
RUN_AND_LIST = """
import contextlib, json, sys
from devtool.main import main
with contextlib.redirect_stdout(None), contextlib.redirect_stderr(None):
    try:
        main(sys.argv[1:])
    except SystemExit:
        pass
print(json.dumps(sorted(m for m in {libraries!r} if m in sys.modules)))
"""


def test_the_cli_loads_neither_the_dev_stack_nor_the_registry_until_a_command_needs_them():
    probe = (
        "import sys, devtool.main;"
        "devtool.main.build_parser();"
        "print(sorted(m for m in sys.modules"
        " if m == 'devtool.devstack' or m.startswith('services.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout

    assert out.strip() == "[]"


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["webhooks", "create", "--help"],
        ["listen", "--help"],
        ["webhooks", "get", "not-a-uuid"],
        ["publish", "--room", "r1"],
    ],
    ids=["help", "group help", "listen help", "bad id", "missing flag"],
)
def test_help_and_bad_input_load_no_client_library(argv):
    done = subprocess.run(
        [sys.executable, "-c", RUN_AND_LIST.format(libraries=CLIENT_LIBRARIES), *argv],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_the_keys_commands_roles_are_the_registrys():
    assert ROLES == registry_admin.ROLES
