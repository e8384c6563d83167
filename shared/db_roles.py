"""The services' Postgres roles: each writes rows of its own schema only, reads only what
ARCHITECTURE.md ("Tables and who owns them") allows, and changes no schema (no DDL).

The migrate step (shared/migrate.py, as the owner role) applies a schema's migrations, then
`grant_schema_access`: the roles exist, and this schema's grants are exactly those of
`SCHEMA_ACCESS` (revoked from every service role, then granted). Each schema grants its own
tables, so the steps may run in any order.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import asyncpg
from pydantic import SecretStr

# Read every table of the schema.
ALL_TABLES = ("*",)


@dataclass(frozen=True)
class SchemaAccess:
    """Who may touch one schema besides its owner role (which alone changes its tables):
    its service's role writes rows; `readers` (a service's role, named by the schema it
    writes) may SELECT the tables named."""

    schema: str
    readers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


# One line per schema. The role of the service writing a schema is <prefix><schema>.
SCHEMA_ACCESS = (
    SchemaAccess("registry", {"delivery": ("webhooks",), "workflow": ("workflow_versions",)}),
    SchemaAccess("delivery", {"registry": ALL_TABLES}),
    SchemaAccess("workflow", {"registry": ALL_TABLES}),
    SchemaAccess("events", {"registry": ALL_TABLES}),
)


def role_name(prefix: str, schema: str) -> str:
    return f"{prefix}{schema}"


def access_of(schema: str, access: tuple[SchemaAccess, ...] = SCHEMA_ACCESS) -> SchemaAccess:
    found = next((entry for entry in access if entry.schema == schema), None)
    if found is None:
        raise LookupError(f"schema {schema} has no line in shared/db_roles.py SCHEMA_ACCESS")
    return found


async def grant_schema_access(
    conn: asyncpg.Connection,
    schema: str,
    *,
    prefix: str,
    passwords: Mapping[str, SecretStr],
    access: tuple[SchemaAccess, ...] = SCHEMA_ACCESS,
) -> None:
    """Make the roles and this schema's grants what `access` says (run by the owner, after
    the schema's migrations). Roles given a password (by schema) may log in with it; the
    others are created NOLOGIN and otherwise left as they are."""
    entry = access_of(schema, access)
    every_role = [role_name(prefix, a.schema) for a in access]
    for a in access:
        await ensure_role(conn, role_name(prefix, a.schema), passwords.get(a.schema))
    q, writer = f'"{schema}"', f'"{role_name(prefix, schema)}"'
    everyone = ", ".join(f'"{role}"' for role in every_role)
    statements = [
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {q} FROM {everyone}",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {q} FROM {everyone}",
        f"REVOKE ALL ON SCHEMA {q} FROM {everyone}",
        f"GRANT USAGE ON SCHEMA {q} TO {writer}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {q} TO {writer}",
        # Which migrations ran is the migrate step's to write; the service only checks it.
        f"REVOKE INSERT, UPDATE, DELETE ON {q}.schema_migrations FROM {writer}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {q} TO {writer}",
    ]
    for reader, tables in entry.readers.items():
        target = (
            f"ALL TABLES IN SCHEMA {q}"
            if tables == ALL_TABLES
            else ", ".join(f'{q}."{table}"' for table in tables)
        )
        reader_role = f'"{role_name(prefix, reader)}"'
        statements += [
            f"GRANT USAGE ON SCHEMA {q} TO {reader_role}",
            f"GRANT SELECT ON {target} TO {reader_role}",
        ]
    async with conn.transaction():  # other sessions see the old grants or the new, never none
        for statement in statements:
            await conn.execute(statement)


async def ensure_role(conn: asyncpg.Connection, role: str, password: SecretStr | None) -> None:
    """The role exists; with a password it may log in with it. Only a SCRAM verifier is sent:
    the password itself never reaches the server, nor its statement log."""
    if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
        try:
            await conn.execute(f'CREATE ROLE "{role}" NOLOGIN')
        except asyncpg.DuplicateObjectError:
            pass  # another database's migrate step made it at the same moment
    if password is not None:
        verifier = scram_sha_256_verifier(password.get_secret_value())
        await conn.execute(f"ALTER ROLE \"{role}\" LOGIN PASSWORD '{verifier}'")


# Postgres' own default (scram_iterations).
SCRAM_ITERATIONS = 4096


def scram_sha_256_verifier(
    password: str, *, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS
) -> str:
    """What Postgres stores for a SCRAM-SHA-256 password (RFC 5802, 7677), as `\\password`
    makes it. ASCII only: Postgres would SASLprep anything else first."""
    if not password or not password.isascii():
        raise ValueError("a role's password must be ASCII and not empty")
    salt = salt if salt is not None else os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"
