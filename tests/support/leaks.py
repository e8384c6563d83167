"""Looking for secrets where they must not be: every spelling of each, in text or bytes.

A webhook secret is 64 hex characters; it is looked for as itself (either case), as any run
of WINDOW characters of it (a truncated copy), as the hex of its UTF-8 bytes (the HMAC key of
`X-Webhook-Signature`), and as the base64 (standard, url-safe, padded or not) of its raw 32
bytes, of its UTF-8 bytes, and of the Standard Webhooks key it decodes to. An API key
(`rhk_...`) is looked for as itself, without its prefix, and as any run of WINDOW characters
of its random part (its stored display prefix is shorter than that).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field

import asyncpg

WINDOW = 16


def _b64_spellings(raw: bytes) -> set[str]:
    spellings = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        text = encode(raw).decode("ascii")
        spellings |= {text, text.rstrip("=")}
    return spellings


def _windows(text: str) -> set[str]:
    return {text[i : i + WINDOW] for i in range(len(text) - WINDOW + 1)}


def webhook_secret_spellings(secret: str) -> set[str]:
    standard_key = base64.b64decode(secret + "==")  # what `standardwebhooks` signs with
    return (
        {secret, secret.upper(), secret.encode().hex()}
        | _windows(secret)
        | _windows(secret.upper())
        | _b64_spellings(bytes.fromhex(secret))
        | _b64_spellings(secret.encode())
        | _b64_spellings(standard_key)
        | {standard_key.hex()}
    )


def api_key_spellings(token: str) -> set[str]:
    body = token.removeprefix("rhk_")
    return {token, body} | _windows(body) | _b64_spellings(token.encode())


# Every spelling is made of these; a haystack is searched only inside such runs.
_RUNS = re.compile(rf"[A-Za-z0-9+/=_-]{{{WINDOW},}}")


@dataclass
class Needles:
    """Labelled spellings; `find` says which secrets a text holds (by label), and where.

    Each spelling is at least WINDOW long and is found by its first WINDOW characters, then
    checked whole: one pass over the haystack however many spellings there are.
    """

    _by_start: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def add(self, label: str, spellings: set[str]) -> None:
        for spelling in spellings:
            assert len(spelling) >= WINDOW and _RUNS.fullmatch(spelling), spelling
            self._by_start.setdefault(spelling[:WINDOW], []).append((spelling, label))

    def find(self, haystack: str | bytes) -> list[tuple[str, int]]:
        """(label, offset) of every spelling found; bytes are searched byte for byte."""
        text = haystack.decode("latin-1") if isinstance(haystack, bytes) else haystack
        found = []
        for run in _RUNS.finditer(text):
            chunk, base = run.group(), run.start()
            for i in range(len(chunk) - WINDOW + 1):
                for spelling, label in self._by_start.get(chunk[i : i + WINDOW], ()):
                    if chunk.startswith(spelling, i):
                        found.append((label, base + i))
        return found


async def database_rows(
    url: str, schemas: tuple[str, ...], *, skip: set[tuple[str, str, str]]
) -> dict[str, bytes]:
    """`schema.table #n` -> the row's columns (bytea as it is, the rest as text), for every
    table of `schemas`, without the (schema, table, column)s in `skip`."""
    conn = await asyncpg.connect(url)
    try:
        tables = await conn.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables"
            " WHERE table_schema = ANY($1::text[]) AND table_type = 'BASE TABLE' ORDER BY 1, 2",
            list(schemas),
        )
        rows: dict[str, bytes] = {}
        for schema, table in tables:
            records = await conn.fetch(f'SELECT * FROM "{schema}"."{table}"')
            for n, record in enumerate(records):
                parts = [
                    value if isinstance(value, bytes) else str(value).encode()
                    for column, value in record.items()
                    if (schema, table, column) not in skip and value is not None
                ]
                rows[f"{schema}.{table} #{n}"] = b"\n".join(parts)
        return rows
    finally:
        await conn.close()
