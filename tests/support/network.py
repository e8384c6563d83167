"""Name resolution from a table, and a tripwire that keeps a test's connections on loopback.

SSRF tests point the services at addresses they must refuse. Should a refusal ever regress,
the tripwire turns the connection the code would have made into a failing test instead of
traffic leaving the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import Iterator, Mapping
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult


class TableResolver(AbstractResolver):
    """DNS from a table: the guard sees the addresses a real resolver would give, and no
    query leaves the machine."""

    def __init__(self, addresses: Mapping[str, str]) -> None:
        self._addresses = dict(addresses)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host not in self._addresses:
            raise OSError(f"unknown host {host}")
        address = self._addresses[host]
        return [
            ResolveResult(hostname=host, host=address, port=port, family=family, proto=0, flags=0)
        ]

    async def close(self) -> None:
        pass


def _is_loopback(host: str) -> bool:
    ip = ipaddress.ip_address(host.split("%")[0])
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return (mapped or ip).is_loopback


@contextlib.contextmanager
def loopback_only() -> Iterator[list[Any]]:
    """While open, every socket connect of the running loop to a non-loopback address fails
    (ConnectionRefusedError) and is listed in the yielded list, which a test asserts empty.

    aiohttp (through aiohappyeyeballs), asyncpg and aiokafka all connect with
    `loop.sock_connect`, directly or inside `loop.create_connection`.
    """
    loop = asyncio.get_running_loop()
    attempted: list[Any] = []
    original = loop.sock_connect

    async def sock_connect(sock: socket.socket, address: Any) -> None:
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and not _is_loopback(host):
            attempted.append(address)
            raise ConnectionRefusedError(f"test tripwire: {host} is not a loopback address")
        await original(sock, address)

    loop.sock_connect = sock_connect  # type: ignore[method-assign]
    try:
        yield attempted
    finally:
        del loop.sock_connect  # the class's method again


class ConnectionCounter:
    """A loopback listener that counts the TCP connections made to it and closes each: the
    endpoint a refused request must never reach (an HTTP receiver would not see a TLS hello
    or a connection dropped before its request)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.accepted = 0
        self._server: asyncio.Server | None = None

    def url(self, path: str, scheme: str = "http", host: str | None = None) -> str:
        return f"{scheme}://{host or self.host}:{self.port}{path}"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        writer.close()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
