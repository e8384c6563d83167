"""The layer rule's check (`python -m tests.layers`, run by `make lint`) over synthetic trees and
over this repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import layers


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    for package in ("services", "shared", "devtool"):
        (root / package).mkdir(exist_ok=True)
    return root


def crossed(tmp_path: Path, files: dict[str, str]) -> list[tuple[str, str]]:
    return [(c.module, c.imported) for c in layers.crossings(tree(tmp_path, files))]


def test_the_repository_keeps_the_layer_rule() -> None:
    assert [str(c) for c in layers.crossings()] == []


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {"services/registry/app.py": "from services.delivery.ssrf import AddressPolicy\n"},
            [("services.registry.app", "services.delivery.ssrf")],
        ),
        (
            {"services/registry/app.py": "def f():\n    import services.workflow_runner.sandbox\n"},
            [("services.registry.app", "services.workflow_runner.sandbox")],
        ),
        (
            {"shared/db.py": "from services.registry import SCHEMA\n"},
            [("shared.db", "services.registry")],
        ),
        (
            {"shared/db.py": "import importlib\nimportlib.import_module(f'services.{name}')\n"},
            [("shared.db", "services.?")],
        ),
        (
            {"services/fanout/app.py": "import devtool.main\n"},
            [("services.fanout.app", "devtool.main")],
        ),
        (
            {
                "services/registry/repository.py": "",
                "devtool/main.py": "from services.registry import repository\n",
            },
            [("devtool.main", "services.registry.repository")],
        ),
        (
            {"shared/cli/main.py": "from services.registry.service import AccountService\n"},
            [("shared.cli.main", "services.registry.service")],
        ),
        (
            {"devtool/main.py": "from services.registry.settings import RegistrySettings\n"},
            [("devtool.main", "services.registry.settings")],
        ),
        (
            {"services/delivery/app.py": "from ..registry.policy import Role\n"},
            [("services.delivery.app", "services.registry.policy")],
        ),
    ],
)
def test_a_crossing_import_fails_the_check(tmp_path: Path, files, expected) -> None:
    assert crossed(tmp_path, files) == expected


def test_a_service_may_import_shared_and_itself_and_the_dev_tool_entry_points(
    tmp_path: Path,
) -> None:
    files = {
        "services/__init__.py": "",
        "services/registry/__init__.py": "SCHEMA = 'registry'\n",
        "services/registry/admin.py": "from . import repository\nfrom .service import X\n",
        "services/registry/repository.py": "from shared.db import create_pool\n",
        "services/registry/service.py": "from services.registry.repository import Y\n",
        "services/delivery/__main__.py": "import shared.logging\n",
        "shared/db.py": "import asyncpg\nfrom .settings import PostgresSettings\n",
        "shared/settings.py": "",
        "devtool/main.py": (
            "from services.registry import admin\n"
            "from services.registry.admin import bootstrap\n"
            "import services.delivery.__main__\n"
            "from services.registry import SCHEMA\n"
            "from shared.db import create_pool\n"
        ),
    }
    assert crossed(tmp_path, files) == []


def test_the_check_exits_non_zero_and_names_each_crossing(tmp_path: Path, capsys) -> None:
    tree(tmp_path, {"shared/ssrf.py": "from services.delivery.policy import Outcome\n"})
    assert layers.main(tmp_path) == 1
    assert "shared.ssrf:1 imports services.delivery.policy" in capsys.readouterr().err
