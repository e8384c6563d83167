"""What `roomhooks dev` prints once every service is ready: where everything is, in one block."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from services.registry.admin import AccountKeys

READY_LINE = "roomhooks ready"


@dataclass(frozen=True)
class StackFacts:
    api_url: str
    account: AccountKeys
    account_reused: bool
    bootstrap: str
    postgres: str  # the URL, its password hidden
    postgres_source: str
    database: str
    # Why this database, and anything else to know of it: one line each.
    database_notes: Sequence[str]
    run_env: Path


def banner(facts: StackFacts) -> str:
    """The block, then the ready line."""
    kept = " (kept from the previous run)" if facts.account_reused else ""
    why, *more = facts.database_notes or [""]
    path = facts.run_env
    return "\n".join(
        [
            "",
            "roomhooks dev stack",
            f"  API          {facts.api_url}",
            f"  account      {facts.account.account_id}{kept}",
            f"  OWNER key    {facts.account.owner_token}",
            f"  MEMBER key   {facts.account.member_token}",
            f"  Kafka        {facts.bootstrap}",
            f"  Postgres     {facts.postgres} ({facts.postgres_source})",
            f"  database     {facts.database}" + (f": {why}" if why else ""),
            *(f"               {line}" for line in more),
            f"  saved in     {path}  (load it into a shell: . {shlex.quote(str(path))})",
            "",
            f"{READY_LINE} at {facts.api_url} (Ctrl-C stops everything)",
        ]
    )
