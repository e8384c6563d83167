"""Transitional, for callers outside the registry that still build `AccountService(pool)`
from here (tests/integration/test_cli.py, tests/bench/stack.py, tests/chaos/hostile_tenants.py);
tools reach accounts through `services.registry.admin`. Delete once they do."""

from __future__ import annotations

import asyncpg

from services.registry.accounts.repository import PostgresAccounts
from services.registry.accounts.service import AccountService as _AccountService


def AccountService(pool: asyncpg.Pool) -> _AccountService:
    return _AccountService(PostgresAccounts(pool))
