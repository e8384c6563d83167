"""What `roomhooks keys list` and `keys revoke` print: keys in aligned columns, times in UTC."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from services.registry.admin import ApiKey


def utc_text(moment: datetime | None) -> str:
    """`2026-05-01T12:00:00Z`; `-` for none."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else "-"


def keys_table(keys: Sequence[ApiKey]) -> str:
    """A header, then one line per key (never the key itself: only its first characters)."""
    rows = [("ID", "ROLE", "PREFIX", "CREATED", "LAST USED", "EXPIRES", "REVOKED", "LABEL")]
    rows += [
        (
            str(k.id),
            k.role,
            k.prefix,
            utc_text(k.created_at),
            utc_text(k.last_used_at),
            utc_text(k.expires_at),
            utc_text(k.revoked_at),
            k.label or "-",
        )
        for k in keys
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
