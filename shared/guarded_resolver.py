"""An aiohttp resolver that applies the SSRF guard to the addresses a name resolves to.

Literal addresses in a URL are judged before connecting (`AddressPolicy.host_refusal`); a name
is judged here, after resolution, so a name that resolves to a private address (DNS rebinding
included) is never connected to. The delivery dispatcher and the workflow `fetch` both use it.
"""

from __future__ import annotations

import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from shared.ssrf import AddressPolicy, BlockedAddress, guard_message

__all__ = ["GuardedResolver"]


class GuardedResolver(AbstractResolver):
    """Resolves as usual, then keeps only the addresses the policy allows."""

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        kinds = {r["host"]: self._policy.kind_refused(r["host"]) for r in results}
        allowed = [r for r in results if kinds[r["host"]] is None]
        if not allowed:
            # What the addresses are, not which: a tenant learns nothing of internal DNS.
            what = ", ".join(sorted({kind for kind in kinds.values() if kind}))
            raise BlockedAddress(guard_message(f"{host} resolves only to {what or 'nothing'}"))
        return allowed

    async def close(self) -> None:
        await self._inner.close()
