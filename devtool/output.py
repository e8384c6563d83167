"""How the API commands print: tables for people (tabulate), the API's `data` for `--json`.

Cells are one line of printable text: what the API hands back is a tenant's data, so control
characters are shown escaped, never sent to the terminal.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from tabulate import tabulate

# A list table's text cells are cut to this many characters (`get` shows them whole).
CELL_WIDTH = 60

Columns = Sequence[tuple[str, str]]  # (header, field of each row)


def cell(value: Any, *, width: int | None = None) -> str:
    """A value as one printable line: `-` for none, lists joined by commas, objects as JSON."""
    if value is None:
        text = "-"
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, list) and all(isinstance(v, str | int) for v in value):
        text = ", ".join(str(v) for v in value) or "-"
    elif isinstance(value, dict | list):
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    else:
        text = str(value)
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    if width is not None and len(text) > width:
        text = text[: width - 1] + "…"
    return text


def rows_table(rows: Iterable[Mapping[str, Any]], columns: Columns) -> str:
    """One row per item under the column headers, cells cut to CELL_WIDTH."""
    body = [[cell(row.get(field), width=CELL_WIDTH) for _, field in columns] for row in rows]
    return tabulate(
        body, headers=[header for header, _ in columns], tablefmt="plain", disable_numparse=True
    )


def record_table(record: Mapping[str, Any], *, leave_out: Iterable[str] = ()) -> str:
    """One item as `field  value` lines, every field but those left out."""
    skipped = set(leave_out)
    body = [[field, cell(value)] for field, value in record.items() if field not in skipped]
    return tabulate(body, tablefmt="plain", disable_numparse=True)


def page_note(data: Mapping[str, Any]) -> str:
    """The hint under a page that has a next one; "" on the last page."""
    cursor = data.get("next_cursor")
    return f"\nmore: --cursor {cell(cursor)}" if cursor else ""


def show(data: Mapping[str, Any], as_json: bool, render: Callable[[Mapping[str, Any]], str]) -> int:
    """Print the API's `data` as JSON, or `render(data)` for people; the exit code (0)."""
    print(json.dumps(data, indent=2, ensure_ascii=False) if as_json else render(data))
    return 0
