"""Kafka clients over real TLS: the admin, a producer and a consumer built from settings.

The dev broker (Tansu 0.6) serves no TLS: its `--cert` and `--key` flags cannot be given
together and its listener stays plaintext whatever they say. So a TLS-terminating relay
(asyncio, a certificate from a throwaway CA) sits in front of a broker of the test's own,
which advertises the relay's address: every connection the clients make, bootstrap and
broker alike, is a TLS session that the relay counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiokafka.errors import KafkaConnectionError

from devtool.broker import tansu_binary
from shared.kafka import JSON_HEADERS, Topics, ensure_topics, make_consumer, make_producer
from shared.settings import KafkaSettings
from tests.support.services import free_port, wait_for_port
from tests.support.tls import TestCA

pytestmark = pytest.mark.integration


class TlsRelay:
    """Accepts TLS on `port` and relays the plaintext to the broker; counts the sessions."""

    def __init__(self, context: ssl.SSLContext, *, port: int, broker_port: int) -> None:
        self.context, self.port, self.broker_port = context, port, broker_port
        self.sessions = 0
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
        pipes = [
            asyncio.create_task(_pipe(client_r, broker_w)),
            asyncio.create_task(_pipe(broker_r, client_w)),
        ]
        self._tasks.update(pipes)
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pipes:
                task.cancel()
                self._tasks.discard(task)
            for writer in (broker_w, client_w):
                writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()


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


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("kafka-ca"))


def server_context(ca: TestCA, *, client_certs: bool = False) -> ssl.SSLContext:
    served = ca.issue("localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(served.cert, served.key)
    if client_certs:  # mutual TLS: only clients with a certificate of this CA
        context.load_verify_locations(ca.cafile)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


@contextlib.asynccontextmanager
async def tls_broker(ca: TestCA, tmp_path: Path, **context) -> AsyncIterator[TlsRelay]:
    relay_port = free_port()
    with broker_behind(relay_port, tmp_path / "tansu.log") as broker_port:
        context = server_context(ca, **context)
        async with TlsRelay(context, port=relay_port, broker_port=broker_port) as relay:
            yield relay


def tls_settings(relay: TlsRelay, protocol: str = "SSL", **security) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=f"localhost:{relay.port}",
        topic_namespace=f"t{uuid.uuid4().hex[:12]}",
        partitions=1,
        session_timeout_ms=2000,
        request_timeout_ms=5000,
        security_protocol=protocol,
        **security,
    )


async def round_trip(settings: KafkaSettings) -> list[bytes]:
    """Topics created by the admin, one record produced and consumed back: every client."""
    topics = Topics.from_settings(settings)
    await ensure_topics(settings, topics)
    producer = make_producer(settings)
    await producer.start()
    try:
        await producer.send_and_wait(topics.events, b'{"over":"tls"}', headers=JSON_HEADERS)
    finally:
        await producer.stop()
    consumer = make_consumer(settings, topics.events, group_id=None)
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=10000, max_records=1)
    finally:
        await consumer.stop()
    return [record.value for records in batch.values() for record in records]


async def test_the_admin_a_producer_and_a_consumer_work_over_verified_tls(ca, tmp_path):
    async with tls_broker(ca, tmp_path) as relay:
        settings = tls_settings(relay, ssl_cafile=ca.cafile)
        assert await round_trip(settings) == [b'{"over":"tls"}']
        # bootstrap and broker connections of the admin, the producer and the consumer
        assert relay.sessions >= 3


async def test_a_broker_whose_certificate_the_ca_did_not_sign_is_refused(ca, tmp_path):
    other = TestCA(tmp_path, name="another CA")
    async with tls_broker(ca, tmp_path) as relay:
        for settings in (tls_settings(relay, ssl_cafile=other.cafile), tls_settings(relay)):
            with pytest.raises(KafkaConnectionError):
                await ensure_topics(settings)


async def test_mutual_tls_admits_the_client_certificate_and_refuses_its_absence(ca, tmp_path):
    client = ca.issue("roomhooks-client", server=False)
    async with tls_broker(ca, tmp_path, client_certs=True) as relay:
        with pytest.raises(KafkaConnectionError):
            await ensure_topics(tls_settings(relay, ssl_cafile=ca.cafile))
        settings = tls_settings(
            relay, ssl_cafile=ca.cafile, ssl_certfile=client.cert, ssl_keyfile=client.key
        )
        assert await round_trip(settings) == [b'{"over":"tls"}']


async def test_a_plaintext_client_gets_nothing_from_a_tls_listener(ca, tmp_path):
    async with tls_broker(ca, tmp_path) as relay:
        with pytest.raises(KafkaConnectionError):
            await ensure_topics(tls_settings(relay, "PLAINTEXT"))
