"""`roomhooks listen --forward-to URL`: a verified delivery relayed to a local app, as
`stripe listen --forward-to` does.

The app gets the same body bytes and every header of the delivery but the hop-by-hop ones;
what it answers (status, body up to `ANSWER_MAX_BYTES`) is what roomhooks is answered.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from multidict import CIMultiDict

if TYPE_CHECKING:
    import aiohttp

# Hop-by-hop: they describe one connection, not the message (RFC 9110 7.6.1), so the relay
# sets its own. Content-Length is recomputed; Expect was already answered by listen's server.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "content-length",
        "expect",
        "host",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# aiohttp would add these when absent; the app gets only what the delivery carried.
NO_AUTO_HEADERS = ("Accept", "Accept-Encoding", "Content-Type", "User-Agent")
# The delivery service keeps 4 KiB of an answer; 64 KiB shows the app's whole error page.
ANSWER_MAX_BYTES = 64 * 1024
# Below the delivery service's own 10 s, so roomhooks gets listen's 504, not a timeout.
DEFAULT_TIMEOUT_S = 8.0
# Of the app's answer headers, those that mean something to the delivery service.
RELAYED_ANSWER_HEADERS = ("Content-Type", "Content-Encoding", "Retry-After")


def check_forward_url(url: str) -> str:
    """`url` when it is an absolute http(s) URL with a host; else ValueError saying why."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"must be an http:// or https:// URL (not {parts.scheme or 'relative'})")
    if not parts.hostname:
        raise ValueError("must name a host, e.g. http://127.0.0.1:3000/webhooks")
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when it is read
    except ValueError:
        raise ValueError("has an invalid port") from None
    return url


def points_at(url: str, *, host: str, port: int) -> bool:
    """Whether `url` is listen's own address (a relay to itself would loop)."""
    parts = urlsplit(url)
    own = {host, "localhost", "127.0.0.1", "::1", "0.0.0.0", "::"}  # noqa: S104 - compared only
    default = 443 if parts.scheme == "https" else 80
    return (parts.port or default) == port and (parts.hostname or "") in own


def forwarded_headers(headers: Iterable[tuple[str, str]]) -> CIMultiDict[str]:
    """Every header but the hop-by-hop ones and those `Connection` names, repeats kept."""
    pairs = list(headers)
    named = {
        token.strip().lower()
        for name, value in pairs
        if name.lower() == "connection"
        for token in value.split(",")
    }
    return CIMultiDict(
        (name, value) for name, value in pairs if name.lower() not in HOP_BY_HOP | named
    )


@dataclass(frozen=True)
class Relayed:
    """The app answered: its status, its body (cut at the cap), the headers worth relaying."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...]
    truncated: bool
    elapsed_ms: int


@dataclass(frozen=True)
class NotRelayed:
    """The app did not answer: 502 (unreachable, broken answer) or 504 (timeout), and why."""

    status: int
    reason: str


class Forwarder:
    """POSTs a delivery to `url` through `session`, whose timeout bounds the whole exchange."""

    def __init__(self, session: aiohttp.ClientSession, url: str, *, timeout_s: float) -> None:
        import aiohttp  # the session's: loaded already

        self.url = url
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._timeout_s = timeout_s

    async def forward(
        self, body: bytes, headers: Iterable[tuple[str, str]]
    ) -> Relayed | NotRelayed:
        import aiohttp

        started = time.monotonic()
        try:
            async with self._session.post(
                self.url,
                data=body,
                headers=forwarded_headers(headers),
                skip_auto_headers=NO_AUTO_HEADERS,
                allow_redirects=False,
                timeout=self._timeout,
            ) as response:
                answer, truncated = await _read_capped(response.content, ANSWER_MAX_BYTES)
                kept = tuple(
                    (name, response.headers[name])
                    for name in RELAYED_ANSWER_HEADERS
                    if name in response.headers
                )
                elapsed_ms = round((time.monotonic() - started) * 1000)
                return Relayed(response.status, answer, kept, truncated, elapsed_ms)
        except TimeoutError:
            return NotRelayed(504, f"no answer within {self._timeout_s:g} s")
        except aiohttp.ClientConnectorError as exc:
            return NotRelayed(502, f"unreachable ({_os_reason(exc.os_error)})")
        except aiohttp.ClientError as exc:
            return NotRelayed(502, f"broken answer ({type(exc).__name__}: {exc})")


def _os_reason(error: OSError) -> str:
    # asyncio puts the address in strerror ("Connect call failed (...)"): the errno says it.
    if error.errno and error.errno > 0:
        return os.strerror(error.errno)
    return error.strerror or str(error)


async def _read_capped(stream: aiohttp.StreamReader, limit: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    async for chunk in stream.iter_chunked(16 * 1024):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks)[:limit], True
    return b"".join(chunks), False
