"""Kafka clients over real TLS, and SASL over TLS: the admin, a producer and a consumer built
from settings.

The dev broker (Tansu 0.6) serves no TLS: its `--cert` and `--key` flags cannot be given
together and its listener stays plaintext whatever they say; its SASL offers SCRAM only, for
users it can be given only over an authenticated connection. So a TLS-terminating relay
(tests/support/kafka_relay.py, a certificate from a throwaway CA, SASL PLAIN and SCRAM
answered as Kafka does) sits in front of a broker of the test's own, which advertises the
relay's address: every connection the clients make, bootstrap and broker alike, goes
through it.
"""

from __future__ import annotations

import contextlib
import ssl
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka.errors import KafkaConnectionError

from shared.kafka import JSON_HEADERS, Topics, ensure_topics, make_consumer, make_producer
from shared.settings import KafkaSettings
from tests.support.kafka_relay import TlsRelay, broker_behind
from tests.support.services import free_port
from tests.support.tls import TestCA

pytestmark = pytest.mark.integration


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
async def tls_broker(
    ca: TestCA, tmp_path: Path, *, client_certs: bool = False, **sasl
) -> AsyncIterator[TlsRelay]:
    relay_port = free_port()
    with broker_behind(relay_port, tmp_path / "tansu.log") as broker_port:
        context = server_context(ca, client_certs=client_certs)
        async with TlsRelay(context, port=relay_port, broker_port=broker_port, **sasl) as relay:
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


PASSWORD = "correct horse battery staple"


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"])
async def test_every_client_logs_in_with_sasl_over_tls(ca, tmp_path, mechanism):
    users = {"roomhooks": PASSWORD}
    async with tls_broker(ca, tmp_path, users=users, mechanism=mechanism) as relay:
        settings = tls_settings(
            relay, "SASL_SSL", ssl_cafile=ca.cafile, sasl_mechanism=mechanism,
            sasl_username="roomhooks", sasl_password=PASSWORD,
        )  # fmt: skip
        assert await round_trip(settings) == [b'{"over":"tls"}']
        assert relay.logins >= 3 and relay.refused == 0


@pytest.mark.parametrize(
    ("username", "password"), [("roomhooks", "wrong"), ("someone", PASSWORD)],
    ids=["wrong-password", "unknown-user"],
)  # fmt: skip
async def test_a_wrong_sasl_login_is_refused(ca, tmp_path, username, password):
    users = {"roomhooks": PASSWORD}
    async with tls_broker(ca, tmp_path, users=users) as relay:
        settings = tls_settings(
            relay, "SASL_SSL", ssl_cafile=ca.cafile, sasl_mechanism="SCRAM-SHA-512",
            sasl_username=username, sasl_password=password,
        )  # fmt: skip
        with pytest.raises(KafkaConnectionError):
            await ensure_topics(settings)
        assert relay.refused >= 1 and relay.logins == 0


async def test_a_client_without_sasl_gets_nothing_from_a_sasl_listener(ca, tmp_path):
    async with tls_broker(ca, tmp_path, users={"roomhooks": PASSWORD}) as relay:
        with pytest.raises(KafkaConnectionError):
            await ensure_topics(tls_settings(relay, ssl_cafile=ca.cafile))
        assert relay.logins == 0
