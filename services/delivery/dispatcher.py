"""One HTTP POST to a customer endpoint -> AttemptResult. No database here.

Every answer, and every way of not answering, becomes a result, never an exception (see
`answers`). Redirects are not followed (a 3xx fails the attempt, and the error says where it
pointed); no more of the body than the cap is read; one deadline (`timeout_s`) covers the
whole attempt, body included, so a trickling or endless body cannot hold a lane; every address
is checked by the SSRF guard: literal IPs (in any spelling) here, resolved names in the
resolver, so a name that resolves to a private address (DNS rebinding included) is never
connected to.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

import aiohttp
import structlog
from yarl import URL

from services.delivery.answers import answered, failed, redirect_error
from services.delivery.policy import AttemptResult, Outcome
from shared.signing import PreviousSecret, signature_headers
from shared.ssrf import AddressPolicy, BlockedAddress, guard_message

__all__ = ["Dispatcher", "build_headers", "endpoint_session", "redirect_error"]

log = structlog.get_logger(__name__)


def build_headers(
    *,
    secret: str,
    body: bytes,
    delivery_id: str,
    event: str,
    attempt: int,
    timestamp: int,
    user_agent: str,
    previous: PreviousSecret | None = None,
    custom: Sequence[tuple[str, str]] = (),
) -> dict[str, str]:
    """Every header of docs/webhooks.md: the webhook's own (`custom`), both signature
    schemes (with `previous` while it is live at `timestamp`), and who/what/which attempt.

    `webhook-id` is the delivery id on every attempt, so receivers can drop duplicates.
    The registry refuses custom names that would collide with ours.
    """
    return {
        **dict(custom),
        "Content-Type": "application/json",
        # A compressed answer is bytes we would have to inflate to show: ask for none.
        "Accept-Encoding": "identity",
        "User-Agent": user_agent,
        **signature_headers(
            secret, msg_id=delivery_id, timestamp=timestamp, body=body, previous=previous
        ),
        "X-Webhook-Event": event,
        "X-Webhook-Delivery": delivery_id,
        "X-Webhook-Attempt": str(attempt),
    }


def endpoint_session(connector: aiohttp.BaseConnector) -> aiohttp.ClientSession:
    """The HTTP client every attempt goes through. It keeps no cookies: a cookie one endpoint
    sets would otherwise go out with every later delivery to its host, whichever webhook or
    account it is for (and the jar would grow with every host). It asks for no compression
    (`build_headers`) and inflates none: the answer is kept as sent, up to the cap."""
    return aiohttp.ClientSession(
        connector=connector, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar()
    )


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

        def elapsed() -> int:
            return int((time.perf_counter() - t0) * 1000)

        def no_answer(outcome: Outcome, reason: str) -> AttemptResult:
            return failed(outcome, reason, started_at=started_at, duration_ms=elapsed())

        try:
            target = URL(url)
            refusal = self._refusal(target.host or "")
        except (ValueError, TypeError, UnicodeError) as exc:
            return no_answer(Outcome.NETWORK_ERROR, f"the webhook URL does not parse: {exc}")
        if refusal is not None:
            return no_answer(Outcome.BLOCKED, refusal)
        status: int | None = None
        answer_headers: Mapping[str, str] = {}
        raw = bytearray()
        body_error: str | None = None
        try:
            # aiohttp's total timeout covers the body reads too: one deadline per attempt.
            async with self._session.post(
                target, data=body, headers=headers, allow_redirects=False, timeout=self._timeout
            ) as response:
                status, answer_headers = response.status, response.headers
                try:
                    await _read_capped(response.content, self._body_max, into=raw)
                except TimeoutError:
                    body_error = f"its body did not end within {self._timeout.total} s"
                except (aiohttp.ClientError, OSError) as exc:
                    body_error = f"its body broke off: {_network_reason(exc)}"
        except BlockedAddress as exc:
            return no_answer(Outcome.BLOCKED, str(exc))
        except TimeoutError:
            if status is None:
                return no_answer(Outcome.NETWORK_ERROR, f"timed out after {self._timeout.total} s")
            body_error = f"its body did not end within {self._timeout.total} s"
        except (aiohttp.ClientError, OSError, asyncio.IncompleteReadError) as exc:
            if status is None:
                return no_answer(Outcome.NETWORK_ERROR, _network_reason(exc))
            body_error = f"its body broke off: {_network_reason(exc)}"
        except Exception as exc:
            log.exception("delivery.dispatch_unexpected", error_type=type(exc).__name__)
            return no_answer(Outcome.NETWORK_ERROR, f"unexpected {type(exc).__name__}: {exc}")
        return answered(
            status,
            answer_headers,
            bytes(raw),
            started_at=started_at,
            duration_ms=elapsed(),
            body_limit=self._body_max,
            policy=self._policy,
            body_error=body_error,
        )


async def _read_capped(content: aiohttp.StreamReader, cap: int, *, into: bytearray) -> None:
    """Read the body into `into` until it ends or holds `cap` bytes; never more.

    `read(n)` returns whatever has arrived (up to n), so it is called until the cap or EOF.
    """
    while len(into) < cap:
        chunk = await content.read(cap - len(into))
        if not chunk:
            return
        into += chunk


def _network_reason(exc: BaseException) -> str:
    """`ClientConnectorSSLError: ...`: the class names the kind, the text the detail.

    aiohttp reports an answer it cannot parse (a status line or header past its limits,
    bytes that are not HTTP) as a `ClientResponseError` with status 400 of its own making:
    say what it is instead."""
    if type(exc) is aiohttp.ClientResponseError:
        return f"the answer is not valid HTTP: {exc.message}"
    return f"{type(exc).__name__}: {exc}"
