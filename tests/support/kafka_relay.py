"""A Kafka listener with TLS, and optionally SASL, in front of the dev broker, which has
neither (Tansu 0.6 serves no TLS; its SASL offers only SCRAM for users that can only be added
over an already authenticated connection).

`TlsRelay` accepts TLS on its port and relays the plaintext to a broker of the test's own that
advertises the relay's address (`broker_behind`), so every client connection goes through it.
Given `users`, it first authenticates each connection as a Kafka broker does: the client's
ApiVersions goes to the broker, SaslHandshake and SaslAuthenticate are answered here (PLAIN,
or SCRAM-SHA-256/512 per RFC 5802), and nothing else passes before that has succeeded.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import os
import ssl
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

from devtool.broker import tansu_binary
from tests.support.services import free_port, wait_for_port

API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE = 18, 17, 36
UNSUPPORTED_SASL_MECHANISM, SASL_AUTHENTICATION_FAILED = 33, 58
SCRAM_HASHES = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}


@contextlib.contextmanager
def broker_behind(advertised_port: int, log: Path) -> Iterator[int]:
    """A memory-only Tansu on a free port that tells clients to connect to `advertised_port`."""
    port = free_port()
    argv = [str(tansu_binary()), "broker", "--listener-url", f"tcp://127.0.0.1:{port}",
            "--advertised-listener-url", f"tcp://localhost:{advertised_port}"]  # fmt: skip
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_port("127.0.0.1", port, timeout_s=15)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class TlsRelay:
    """TLS on `port`, relayed to the broker; `users` (name -> password) turns SASL on.
    Counts the TLS sessions, and the logins that succeeded and failed."""

    def __init__(
        self, context: ssl.SSLContext, *, port: int, broker_port: int,
        users: dict[str, str] | None = None, mechanism: str = "SCRAM-SHA-512",
    ) -> None:  # fmt: skip
        self.context, self.port, self.broker_port = context, port, broker_port
        self.users, self.mechanism = users, mechanism
        self.sessions, self.logins, self.refused = 0, 0, 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    async def __aenter__(self) -> TlsRelay:
        self._server = await asyncio.start_server(
            self._relay, "127.0.0.1", self.port, ssl=self.context
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter):
        self.sessions += 1
        broker_r, broker_w = await asyncio.open_connection("127.0.0.1", self.broker_port)
        try:
            if self.users is None or await self._authenticated(
                client_r, client_w, broker_r, broker_w
            ):
                await self._pipe_both(client_r, client_w, broker_r, broker_w)
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        finally:
            for writer in (broker_w, client_w):
                writer.close()

    async def _pipe_both(self, client_r, client_w, broker_r, broker_w) -> None:
        pipes = {asyncio.create_task(_pipe(client_r, broker_w)),
                 asyncio.create_task(_pipe(broker_r, client_w))}  # fmt: skip
        self._tasks |= pipes
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pipes:
                task.cancel()
            self._tasks -= pipes

    async def _authenticated(self, client_r, client_w, broker_r, broker_w) -> bool:
        """Answer the SASL exchange; True once the client has proved its password."""
        assert self.users is not None
        login = SaslLogin(self.users, self.mechanism)
        while True:
            api_key, version, correlation, body, frame = await _read_request(client_r)
            if api_key == API_VERSIONS:  # the broker's own answer, as Kafka gives it
                broker_w.write(frame)
                client_w.write(await _read_frame(broker_r))
            elif api_key == SASL_HANDSHAKE:
                client_w.write(_answer(correlation, login.handshake(_string(body))))
            elif api_key == SASL_AUTHENTICATE:
                (size,) = struct.unpack(">i", body[:4])
                error, reply = login.step(body[4 : 4 + size])
                message = b"\xff\xff" if not error else _str(f"{login.mechanism} refused")
                answer = struct.pack(">h", error) + message + struct.pack(">i", len(reply)) + reply
                if version >= 1:
                    answer += struct.pack(">q", 0)  # session lifetime: none
                client_w.write(_answer(correlation, answer))
                if error or login.done:
                    await client_w.drain()
                    self.logins += not error
                    self.refused += bool(error)
                    return not error
            else:  # anything else before a login: a broker closes the connection
                self.refused += 1
                return False
            await client_w.drain()


class SaslLogin:
    """One connection's SASL exchange, server side: PLAIN or SCRAM (RFC 5802)."""

    def __init__(self, users: dict[str, str], mechanism: str) -> None:
        self.users, self.mechanism, self.done = users, mechanism, False
        self._first: tuple[str, str, bytes, str] | None = None  # user, bare, salt, server-first

    def handshake(self, asked: str) -> bytes:
        error = 0 if asked == self.mechanism else UNSUPPORTED_SASL_MECHANISM
        return struct.pack(">hi", error, 1) + _str(self.mechanism)

    def step(self, data: bytes) -> tuple[int, bytes]:
        """(error code, the bytes to answer)."""
        if self.mechanism == "PLAIN":
            _, user, password = data.decode().split("\0")
            self.done = True
            return (0 if self.users.get(user) == password else SASL_AUTHENTICATION_FAILED), b""
        if self._first is None:
            bare = data.decode().split(",", 2)[2]  # after the "n,," header
            fields = dict(item.split("=", 1) for item in bare.split(","))
            salt = os.urandom(16)
            server_first = f"r={fields['r']}{os.urandom(8).hex()},s={_b64(salt)},i=4096"
            self._first = (fields["n"], bare, salt, server_first)
            return 0, server_first.encode()
        user, bare, salt, server_first = self._first
        final = data.decode()
        without_proof, proof = final.rsplit(",p=", 1)
        auth_message = f"{bare},{server_first},{without_proof}".encode()
        digest = SCRAM_HASHES[self.mechanism]
        salted = hashlib.pbkdf2_hmac(digest, self.users.get(user, "").encode(), salt, 4096)
        stored_key = hashlib.new(digest, hmac.digest(salted, b"Client Key", digest)).digest()
        signature = hmac.digest(stored_key, auth_message, digest)
        client_key = bytes(a ^ b for a, b in zip(base64.b64decode(proof), signature, strict=True))
        self.done = True
        if user not in self.users or hashlib.new(digest, client_key).digest() != stored_key:
            return SASL_AUTHENTICATION_FAILED, b""
        server_key = hmac.digest(salted, b"Server Key", digest)
        return 0, f"v={_b64(hmac.digest(server_key, auth_message, digest))}".encode()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    size = await reader.readexactly(4)
    return size + await reader.readexactly(struct.unpack(">i", size)[0])


async def _read_request(reader: asyncio.StreamReader) -> tuple[int, int, bytes, bytes, bytes]:
    """(api key, version, correlation id, body, the whole frame) of a request, header v1."""
    frame = await _read_frame(reader)
    api_key, version = struct.unpack(">hh", frame[4:8])
    (client_id_size,) = struct.unpack(">h", frame[12:14])
    return api_key, version, frame[8:12], frame[14 + max(client_id_size, 0) :], frame


def _answer(correlation: bytes, body: bytes) -> bytes:
    return struct.pack(">i", len(correlation) + len(body)) + correlation + body


def _string(data: bytes) -> str:
    (size,) = struct.unpack(">h", data[:2])
    return data[2 : 2 + size].decode()


def _str(text: str) -> bytes:
    return struct.pack(">h", len(text)) + text.encode()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()
