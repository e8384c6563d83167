"""Webhook endpoints that answer in ordinary-but-hostile ways, on a real local port.

One asyncio server on 127.0.0.1 speaks raw bytes, so it can misbehave below HTTP: a webhook
of kind `k` points at `url(k)`; `hits[k]` counts the requests (or TLS hellos) it received.
Every connection is closed after its answer. Used by the delivery tests and the chaos suite.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gzip
import socket
import struct

KINDS: tuple[str, ...] = (
    "nul-body",  # 500 whose body holds NUL bytes
    "invalid-utf8",  # 500 whose body is not UTF-8
    "gzip-body",  # 200 with a gzip body, whatever Accept-Encoding asked for
    "huge-body",  # 200 with a 4 MiB body
    "endless-body",  # 200, chunked, chunks until the client goes away
    "trickle-body",  # 200, then one body byte every 200 ms, never finishing
    "long-header",  # 200 with a 64 KiB header
    "long-status-line",  # a 64 KiB status line
    "bad-retry-after",  # 429 with `Retry-After: ²`
    "bad-location",  # 302 with `Location: http://[::1`
    "reset-mid-answer",  # 200 headers, half the promised body, then a TCP reset
    "not-http",  # bytes that are not HTTP at all
    "tls-error",  # an https:// URL to a port that speaks no TLS
)

# Kinds whose answer is a 2xx the dispatcher can read: their deliveries end `success`; every
# other kind's end `failed` once its retry schedule is spent.
SUCCEEDING: frozenset[str] = frozenset({"gzip-body", "huge-body", "endless-body"})

# Bounds on the server's own misbehaviour, so a client that never hangs up costs nothing.
_HEAD_MAX = 64 * 1024
_STREAM_FOR_S = 120.0
_PATH = "/hostile/"


def _answer(status: str, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", "Connection: close"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return "\r\n".join(head).encode("utf-8") + b"\r\n\r\n" + body


_FIXED: dict[str, bytes] = {
    "nul-body": _answer("500 Internal Server Error", body=b"boom\x00after the nul\x00"),
    "invalid-utf8": _answer("500 Internal Server Error", body=b"bad \xff\xfe \xc3\x28 bytes"),
    "gzip-body": _answer(
        "200 OK",
        {"Content-Encoding": "gzip", "Content-Type": "text/plain"},
        gzip.compress(b"accepted, compressed"),
    ),
    "huge-body": _answer("200 OK", body=b"A" * (4 * 1024 * 1024)),
    "long-header": b"HTTP/1.1 200 OK\r\nX-Long: "
    + b"h" * (64 * 1024)
    + b"\r\nContent-Length: 0\r\n\r\n",
    "long-status-line": b"HTTP/1.1 200 " + b"O" * (64 * 1024) + b"\r\nContent-Length: 0\r\n\r\n",
    "bad-retry-after": _answer("429 Too Many Requests", {"Retry-After": "²"}, b"slow down"),
    "bad-location": _answer("302 Found", {"Location": "http://[::1"}),
    "not-http": b"\x00\x01\x02 SSH-2.0-definitely-not-http \xff\xfe\r\n\r\n",
}


class HostileEndpoints:
    """Async context manager: the server runs between enter and exit."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.hits: collections.Counter[str] = collections.Counter()
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    def url(self, kind: str) -> str:
        if kind not in KINDS:
            raise ValueError(f"unknown hostile kind {kind!r}")
        scheme = "https" if kind == "tls-error" else "http"
        return f"{scheme}://{self.host}:{self.port}{_PATH}{kind}"

    async def __aenter__(self) -> HostileEndpoints:
        self._server = await asyncio.start_server(
            self._connection, self.host, 0, limit=_HEAD_MAX * 2
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=2)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:  # the server is closing (`__aexit__`): end quietly
            pass
        finally:
            self._handlers.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = await reader.read(1)
        if first == b"\x16":  # a TLS ClientHello: answer it in plain text
            self.hits["tls-error"] += 1
            writer.write(_answer("400 Bad Request", body=b"this port speaks plain HTTP"))
            await writer.drain()
            return
        head = first + await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        target = lines[0].split(" ")[1] if len(lines[0].split(" ")) > 1 else ""
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip() or 0)
        if length:
            await reader.readexactly(length)
        kind = target.removeprefix(_PATH) if target.startswith(_PATH) else ""
        if kind not in KINDS:
            writer.write(_answer("404 Not Found", body=b"no such hostile kind"))
            await writer.drain()
            return
        self.hits[kind] += 1
        if kind in _FIXED:
            writer.write(_FIXED[kind])
            await writer.drain()
        elif kind == "endless-body":
            await self._endless(writer)
        elif kind == "trickle-body":
            await self._trickle(writer)
        elif kind == "reset-mid-answer":
            await self._reset(writer)

    async def _endless(self, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        chunk = b"%x\r\n%s\r\n" % (16 * 1024, b"e" * 16 * 1024)
        loop = asyncio.get_running_loop()
        stop = loop.time() + _STREAM_FOR_S
        while loop.time() < stop and not writer.is_closing():
            writer.write(chunk)
            await writer.drain()

    async def _trickle(self, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n")
        loop = asyncio.get_running_loop()
        stop = loop.time() + _STREAM_FOR_S
        while loop.time() < stop and not writer.is_closing():
            writer.write(b"t")
            await writer.drain()
            await asyncio.sleep(0.2)

    async def _reset(self, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"r" * 100)
        await writer.drain()
        await asyncio.sleep(0.05)
        sock = writer.get_extra_info("socket")
        if sock is not None:  # SO_LINGER 0: close() sends RST, not FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
