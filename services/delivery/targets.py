"""The webhook targets cache: url, secrets, headers, enabled and schedule, from Postgres.

Entries are dropped when `roomhooks.registry` announces a change of their webhook (and after
a TTL as a safety net), so an attempt always uses the registry's current settings. The
secrets and headers are stored sealed; they are opened once per load, not per attempt. A
rotation's previous secret is held with its end, which each attempt compares with its own
time: the overlap ends on time with no change announced.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from uuid import UUID

import asyncpg

from services.delivery import repository
from services.delivery.rows import StoredTarget, Target
from shared.secrets_box import SecretsBox, UnreadableSecret, open_headers
from shared.signing import PreviousSecret


def open_target(stored: StoredTarget, box: SecretsBox) -> Target:
    """The target with its secrets and headers opened; when one does not open, a Target
    without a secret, whose attempts fail with the reason (never an exception that stalls
    a lane, never a request without the headers or the signature it should carry)."""
    try:
        if stored.secret_ciphertext is not None:
            secret = box.open(stored.secret_ciphertext)
        else:
            # A row from before sealing: the registry seals it when it starts.
            secret = stored.legacy_secret
        previous = None
        if stored.previous_secret_ciphertext is not None and stored.previous_secret_until:
            previous = PreviousSecret(
                box.open(stored.previous_secret_ciphertext),
                until=int(stored.previous_secret_until.timestamp()),
            )
        headers = tuple(open_headers(box, stored.headers_ciphertext).items())
    except UnreadableSecret as exc:
        return Target(stored.url, None, stored.enabled, stored.retry_schedule, str(exc))
    return Target(
        stored.url,
        secret,
        stored.enabled,
        stored.retry_schedule,
        previous_secret=previous,
        headers=headers,
        send_traceparent=stored.send_traceparent,
    )


class Targets:
    def __init__(
        self,
        pool: asyncpg.Pool,
        box: SecretsBox,
        *,
        ttl_s: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = pool
        self._box = box
        self._ttl_s = ttl_s
        self._monotonic = monotonic
        self._entries: dict[UUID, tuple[float, Target | None]] = {}
        self._loading: dict[UUID, asyncio.Future[Target | None]] = {}

    async def get(self, webhook_id: UUID) -> Target | None:
        """The current target, or None when the webhook no longer exists."""
        entry = self._entries.get(webhook_id)
        if entry is not None and self._monotonic() - entry[0] < self._ttl_s:
            return entry[1]
        pending = self._loading.get(webhook_id)
        if pending is not None:  # one load per webhook, however many deliveries wait on it
            return await asyncio.shield(pending)
        future: asyncio.Future[Target | None] = asyncio.get_running_loop().create_future()
        self._loading[webhook_id] = future
        try:
            async with self._pool.acquire() as conn:
                stored = await repository.load_target(conn, webhook_id)
            target = open_target(stored, self._box) if stored is not None else None
            self._entries[webhook_id] = (self._monotonic(), target)
            future.set_result(target)
            return target
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody logs it twice
            raise
        finally:
            del self._loading[webhook_id]

    def invalidate(self, webhook_id: UUID) -> None:
        self._entries.pop(webhook_id, None)

    def mark_disabled(self, webhook_id: UUID) -> None:
        """Stop sending at once, before the registry's change comes back round."""
        entry = self._entries.get(webhook_id)
        if entry is not None and entry[1] is not None:
            self._entries[webhook_id] = (entry[0], replace(entry[1], enabled=False))

    def __len__(self) -> int:
        return len(self._entries)
