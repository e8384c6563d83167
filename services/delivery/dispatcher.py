"""One HTTP POST to a customer endpoint -> AttemptResult. No database here.

Redirects are not followed (a 3xx fails the attempt, and the error says where it pointed);
the response body is kept up to a cap; every address is checked by the SSRF guard: literal
IPs (in any spelling) here, resolved names in the resolver, so a name that resolves to a
private address (DNS rebinding included) is never connected to.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from services.delivery.policy import AttemptResult, Outcome, classify, parse_retry_after
from services.delivery.ssrf import AddressPolicy, BlockedAddress, guard_message
from shared.signing import signature_headers


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


def build_headers(
    *,
    secret: str,
    body: bytes,
    delivery_id: str,
    event: str,
    attempt: int,
    timestamp: int,
    user_agent: str,
) -> dict[str, str]:
    """Every header of DESIGN.md: both signature schemes, and who/what/which attempt.

    `webhook-id` is the delivery id on every attempt, so receivers can drop duplicates.
    """
    return {
        "Content-Type": "application/json",
        "User-Agent": user_agent,
        **signature_headers(secret, msg_id=delivery_id, timestamp=timestamp, body=body),
        "X-Webhook-Event": event,
        "X-Webhook-Delivery": delivery_id,
        "X-Webhook-Attempt": str(attempt),
    }


def redirect_error(location: str | None, policy: AddressPolicy) -> str:
    """A 3xx is never followed; say where it pointed, and whether the guard refuses that."""
    shown = (location or "(no Location)")[:500]
    error = f"redirect to {shown} not followed"
    host = URL(location).host if location else None
    refusal = policy.host_refusal(host) if host else None
    return f"{error}; {guard_message(refusal)}" if refusal else error


class Dispatcher:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        policy: AddressPolicy,
        timeout_s: float,
        body_max_bytes: int,
        clock: Callable[[], datetime],
    ) -> None:
        self._session = session
        self._policy = policy
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._body_max = body_max_bytes
        self._clock = clock
        # Asked on every attempt, and hosts repeat: decide each host once.
        self._refusal = functools.lru_cache(maxsize=4096)(self._literal_refusal)

    def _literal_refusal(self, host: str) -> str | None:
        """Why the guard refuses `host` when it is an address (None: allowed, or a name,
        which the resolver checks)."""
        refusal = self._policy.host_refusal(host)
        return guard_message(refusal) if refusal else None

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> AttemptResult:
        started_at = self._clock()
        t0 = time.perf_counter()

        def result(outcome: Outcome, **fields: Any) -> AttemptResult:
            elapsed = int((time.perf_counter() - t0) * 1000)
            return AttemptResult(outcome, started_at, elapsed, **fields)

        target = URL(url)
        refusal = self._refusal(target.host or "")
        if refusal is not None:
            return result(Outcome.BLOCKED, error=refusal)
        try:
            async with self._session.post(
                target, data=body, headers=headers, allow_redirects=False, timeout=self._timeout
            ) as response:
                raw = await response.content.read(self._body_max) if self._body_max else b""
                redirect = 300 <= response.status < 400
                location = response.headers.get("Location")
                return result(
                    classify(response.status),
                    status_code=response.status,
                    error=redirect_error(location, self._policy) if redirect else None,
                    response_body=raw.decode("utf-8", errors="replace"),
                    retry_after_s=parse_retry_after(
                        response.headers.get("Retry-After"),
                        status_code=response.status,
                        now=started_at,
                    ),
                )
        except BlockedAddress as exc:
            return result(Outcome.BLOCKED, error=str(exc))
        except TimeoutError:
            return result(Outcome.NETWORK_ERROR, error=f"timed out after {self._timeout.total} s")
        except (aiohttp.ClientError, OSError, asyncio.IncompleteReadError) as exc:
            return result(Outcome.NETWORK_ERROR, error=f"{type(exc).__name__}: {exc}"[:1000])
