"""Commands that only call the API do not pay for importing the dev stack or the registry, and
what the CLI copies from the registry to stay quick still matches it."""

from __future__ import annotations

import subprocess
import sys

from devtool.keys import ROLES
from services.registry import admin as registry_admin


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


def test_the_keys_commands_roles_are_the_registrys():
    assert ROLES == registry_admin.ROLES
