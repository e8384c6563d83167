"""The served OpenAPI document says what was last reviewed, operation by operation.

`fixtures/registry_openapi.json` is the document as reviewed (version "test", page size
maximum 100); it was first captured from the hand-written builder, before the document was
derived from the route table, and showed the derivation changed no content. The form may
change ($ref names, key order, pydantic's `title` keys); the content may not without the
fixture changing in the same commit, so a review sees the API's change as a diff. After a
deliberate change, write it again with:

    .venv/bin/python -c "import json; from services.registry.openapi import build_openapi; \
      print(json.dumps(build_openapi(version='test', page_size_max=100), indent=2, \
      sort_keys=True))" > tests/unit/fixtures/registry_openapi.json
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from services.registry.openapi import build_openapi

BEFORE = json.loads((Path(__file__).parent / "fixtures/registry_openapi.json").read_text())
AFTER = json.loads(json.dumps(build_openapi(version="test", page_size_max=100)))


def inline(node: Any, schemas: dict[str, Any]) -> Any:
    """`node` with every `#/components/schemas/X` reference replaced by X, and pydantic's
    `title` keys (a string, never a property's schema) dropped."""
    if isinstance(node, list):
        return [inline(item, schemas) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
        rest = {k: v for k, v in node.items() if k != "$ref"}
        return inline({**schemas[ref.rsplit("/", 1)[1]], **rest}, schemas)
    return {
        key: inline(value, schemas)
        for key, value in node.items()
        if not (key == "title" and isinstance(value, str))
    }


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    schemas = document["components"]["schemas"]
    found = {}
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            op = inline(operation, schemas)
            op["parameters"] = sorted(op.get("parameters", []), key=lambda p: (p["in"], p["name"]))
            found[(method.upper(), path)] = op
    return found


BEFORE_OPS, AFTER_OPS = operations(BEFORE), operations(AFTER)


def test_the_same_operations_are_documented():
    assert sorted(AFTER_OPS) == sorted(BEFORE_OPS)


@pytest.mark.parametrize("part", ["summary", "security", "parameters", "requestBody", "responses"])
@pytest.mark.parametrize("operation", sorted(BEFORE_OPS), ids=lambda op: f"{op[0]} {op[1]}")
def test_each_operation_says_what_it_said(operation, part):
    assert AFTER_OPS[operation].get(part) == BEFORE_OPS[operation].get(part)


def test_the_same_schemas_with_the_same_content():
    before, after = BEFORE["components"]["schemas"], AFTER["components"]["schemas"]
    assert sorted(after) == sorted(before)
    for name in before:
        assert inline(after[name], after) == inline(before[name], before), name


def test_the_document_header_is_unchanged():
    for key in ("openapi", "info", "security"):
        assert AFTER[key] == BEFORE[key], key
    assert AFTER["components"]["securitySchemes"] == BEFORE["components"]["securitySchemes"]
