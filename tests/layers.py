"""The layer rule, checked over the source: `python -m tests.layers` (part of `make lint`).

- A service (`services/<name>/`) imports `shared` and itself, never another service and never
  the dev tool.
- `shared` imports no service and not the dev tool.
- The dev tool (`devtool/`) reaches a service only through its public entry points:
  ENTRY_POINTS below.

Every `import` and `from ... import` counts, at any depth (inside functions too), relative
ones resolved; so does `import_module("...")` with a literal name. Tests are not checked.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKED = ("services", "shared", "devtool")
DEVTOOL_PACKAGES = ("devtool",)
# What a service offers the dev tool, after `services.<name>`: its package (what it names, such
# as its schema), its process, and the admin module it owns for what no API can do.
ENTRY_POINTS = ("", ".__main__", ".admin")


@dataclass(frozen=True)
class Crossing:
    module: str
    line: int
    imported: str
    rule: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.imported}: {self.rule}"


def layer(module: str) -> str | None:
    """'devtool', 'shared', 'services.<name>', or None for what the rule does not cover."""
    if any(module == p or module.startswith(p + ".") for p in DEVTOOL_PACKAGES):
        return "devtool"
    parts = module.split(".")
    if parts[0] == "shared":
        return "shared"
    if parts[0] == "services" and len(parts) > 1:
        return f"services.{parts[1]}"
    return None


def rule_broken(importer: str, imported: str) -> str | None:
    """Why `importer` may not import `imported` (module names), or None when it may."""
    source, target = layer(importer), layer(imported)
    if source is None or target is None or source == target:
        return None
    if source == "devtool":
        if target == "shared":
            return None
        if imported in {target + suffix for suffix in ENTRY_POINTS}:
            return None
        return "the dev tool uses a service only through its entry points"
    if source == "shared":
        return "shared imports no service and not the dev tool"
    if target == "shared":
        return None
    return "a service imports shared and itself, never another service or the dev tool"


def modules(root: Path) -> dict[str, Path]:
    """Module name -> file, for every .py file of the checked packages under `root`."""
    found: dict[str, Path] = {}
    for top in CHECKED:
        for path in sorted((root / top).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imports(
    tree: ast.AST, module: str, *, is_package: bool, known: set[str]
) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every import in `tree`, relative ones made absolute."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                yield node.lineno, candidate if candidate in known else base
        elif isinstance(node, ast.Call) and _is_import_module(node.func) and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield node.lineno, first.value
            elif isinstance(first, ast.JoinedStr) and first.values:
                head = first.values[0]
                if isinstance(head, ast.Constant) and isinstance(head.value, str):
                    yield node.lineno, head.value.rstrip(".") + ".?"  # services.{name}: a service


def _is_import_module(func: ast.expr) -> bool:
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    return name == "import_module"


def crossings(root: Path = ROOT) -> list[Crossing]:
    """Every import under `root` that breaks the layer rule."""
    found = modules(root)
    known = set(found)
    broken: list[Crossing] = []
    for module, path in found.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        for line, imported in imports(tree, module, is_package=is_package, known=known):
            rule = rule_broken(module, imported)
            if rule is not None:
                broken.append(Crossing(module, line, imported, rule))
    return broken


def main(root: Path = ROOT) -> int:
    broken = crossings(root)
    for crossing in broken:
        print(f"layers: {crossing}", file=sys.stderr)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
