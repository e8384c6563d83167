"""At the registry's start-up: seal plain secrets left from before sealing, re-seal old keys.

Two cases, both in batches, each batch one transaction with its rows locked SKIP LOCKED (so
registry replicas starting together share the work and never seal a row twice):
- rows written before migration 0004 hold their secret in `legacy_secret`: sealed under the
  newest key, the plain copy cleared;
- rows with a value (the secret, a rotation's previous secret, the custom headers) sealed
  under an older key that `ROOMHOOKS_SECRETS_KEY` still lists (rotation): sealed again under
  the newest key, so the old key can then be dropped.
Rows sealed under a key the setting no longer lists cannot be opened by anyone here: counted
and logged (their deliveries fail with that reason), never a start-up failure.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
import structlog

from services.registry.webhooks import repository
from services.registry.webhooks.repository import SealedValues
from shared.secrets_box import SecretsBox, UnreadableSecret

log = structlog.get_logger(__name__)

BATCH = 500


@dataclass(frozen=True)
class SealReport:
    sealed_plain: int
    resealed: int
    unreadable: int


async def seal_stored_secrets(
    pool: asyncpg.Pool, box: SecretsBox, *, batch: int = BATCH
) -> SealReport:
    sealed_plain = resealed = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            rows = await repository.claim_legacy_secrets(conn, limit=batch)
            await repository.store_sealed(conn, [(i, box.seal(plain)) for i, plain in rows])
        sealed_plain += len(rows)
        if len(rows) < batch:
            break
    old_keys = box.key_ids[1:]
    while old_keys:
        async with pool.acquire() as conn, conn.transaction():
            rows = await repository.claim_sealed_under(conn, old_keys, limit=batch)
            renewed = _resealed(box, rows)
            await repository.store_resealed(conn, renewed)
        resealed += len(renewed)
        if len(rows) < batch or not renewed:
            break
    async with pool.acquire() as conn:
        unreadable = await repository.count_sealed_outside(conn, box.key_ids)
    report = SealReport(sealed_plain, resealed, unreadable)
    if sealed_plain or resealed:
        log.info(
            "secrets.sealed_at_start",
            plain=sealed_plain,
            resealed=resealed,
            key_id=box.current_key_id,
        )
    if unreadable:
        log.warning(
            "secrets.sealed_with_unknown_key",
            webhooks=unreadable,
            hint="add the key that sealed them back to ROOMHOOKS_SECRETS_KEY (after the newest)",
        )
    return report


def _resealed(box: SecretsBox, rows: list[SealedValues]) -> list[SealedValues]:
    """Each row's values under the newest key; a row with one that does not open (altered)
    is left as it is."""

    def renewed(sealed: str | None) -> str | None:
        if sealed is None or box.sealed_with(sealed) == box.current_key_id:
            return sealed
        return box.reseal(sealed)

    done = []
    for row in rows:
        try:
            done.append(
                SealedValues(
                    row.webhook_id,
                    renewed(row.secret),
                    renewed(row.previous_secret),
                    renewed(row.headers),
                )
            )
        except UnreadableSecret:
            continue
    return done
