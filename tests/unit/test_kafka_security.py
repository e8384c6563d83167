"""Kafka TLS and SASL from settings: what every client gets, and what is refused at start."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.kafka import connection_options, make_consumer, make_producer
from shared.kafka.topic_setup import make_admin
from shared.settings import KafkaSettings
from tests.support.tls import TestCA

PASSWORD = "s3cr3t-never-logged"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("ca"))


def sasl(mechanism: str = "SCRAM-SHA-512") -> dict[str, str]:
    return {"sasl_mechanism": mechanism, "sasl_username": "roomhooks", "sasl_password": PASSWORD}


def test_plaintext_sends_neither_tls_nor_credentials():
    options = connection_options(KafkaSettings(bootstrap_servers="kafka:9092"))
    assert options == {
        "bootstrap_servers": "kafka:9092",
        "client_id": "roomhooks",
        "security_protocol": "PLAINTEXT",
    }


def test_ssl_verifies_the_brokers_against_the_configured_ca(ca):
    options = connection_options(KafkaSettings(security_protocol="SSL", ssl_cafile=ca.cafile))
    context = options["ssl_context"]
    assert options["security_protocol"] == "SSL"
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [
        ((("commonName", "roomhooks test CA"),),)
    ]
    assert not {"sasl_mechanism", "sasl_plain_password"} & options.keys()


def test_ssl_without_a_ca_file_trusts_the_system_s_cas():
    context = connection_options(KafkaSettings(security_protocol="SSL"))["ssl_context"]
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname


def test_ssl_loads_a_client_certificate_for_mutual_tls(ca):
    client = ca.issue("roomhooks-client", server=False)
    settings = KafkaSettings(
        security_protocol="SSL",
        ssl_cafile=ca.cafile,
        ssl_certfile=client.cert,
        ssl_keyfile=client.key,
    )
    assert isinstance(connection_options(settings)["ssl_context"], ssl.SSLContext)


def test_a_key_that_is_not_the_certificate_s_is_refused_naming_the_settings(ca):
    one, other = ca.issue("one", server=False), ca.issue("other", server=False)
    settings = KafkaSettings(security_protocol="SSL", ssl_certfile=one.cert, ssl_keyfile=other.key)
    with pytest.raises(ValueError, match="KAFKA_SSL_CERTFILE, KAFKA_SSL_KEYFILE"):
        connection_options(settings)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"])
def test_sasl_plaintext_sends_credentials_without_tls(mechanism):
    settings = KafkaSettings(security_protocol="SASL_PLAINTEXT", **sasl(mechanism))
    options = connection_options(settings)
    assert options["security_protocol"] == "SASL_PLAINTEXT"
    assert options["sasl_mechanism"] == mechanism
    assert options["sasl_plain_username"] == "roomhooks"
    assert options["sasl_plain_password"] == PASSWORD
    assert "ssl_context" not in options


def test_sasl_ssl_sends_credentials_over_verified_tls(ca):
    settings = KafkaSettings(security_protocol="SASL_SSL", ssl_cafile=ca.cafile, **sasl())
    options = connection_options(settings)
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["ssl_context"].verify_mode is ssl.CERT_REQUIRED


async def test_producers_consumers_and_the_admin_all_get_the_same_security(ca):
    settings = KafkaSettings(security_protocol="SASL_SSL", ssl_cafile=ca.cafile, **sasl())
    clients = [
        make_producer(settings).client,
        make_consumer(settings, "t", group_id="g")._client,
        make_consumer(settings, "t", group_id=None, background=True)._client,
        make_admin(settings)._client,
    ]
    for client in clients:
        assert client._security_protocol == "SASL_SSL"
        assert isinstance(client._ssl_context, ssl.SSLContext)
        assert client._sasl_mechanism == "SCRAM-SHA-512"
        assert client._sasl_plain_username == "roomhooks"
        assert client._sasl_plain_password == PASSWORD


def test_the_settings_are_read_from_the_environment(monkeypatch, ca):
    for name, value in {
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SSL_CAFILE": str(ca.cafile),
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
        "KAFKA_SASL_USERNAME": "roomhooks",
        "KAFKA_SASL_PASSWORD": PASSWORD,
    }.items():
        monkeypatch.setenv(name, value)
    settings = KafkaSettings()
    assert settings.sasl_password.get_secret_value() == PASSWORD
    assert PASSWORD not in repr(settings) and PASSWORD not in str(settings.model_dump())


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512"},
         "KAFKA_SASL_USERNAME is required when KAFKA_SECURITY_PROTOCOL is SASL_SSL"),
        ({"security_protocol": "SASL_PLAINTEXT", "sasl_username": "u", "sasl_password": PASSWORD},
         "KAFKA_SASL_MECHANISM is required when KAFKA_SECURITY_PROTOCOL is SASL_PLAINTEXT"),
        ({"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_username": "u",
          "sasl_password": ""}, "KAFKA_SASL_PASSWORD is required"),
        ({"sasl_mechanism": "SCRAM-SHA-256", "sasl_username": "u", "sasl_password": PASSWORD},
         "KAFKA_SASL_MECHANISM is set but KAFKA_SECURITY_PROTOCOL is PLAINTEXT"),
        ({"security_protocol": "SSL", "sasl_mechanism": "PLAIN"},
         "KAFKA_SASL_MECHANISM is set but KAFKA_SECURITY_PROTOCOL is SSL"),
        ({"security_protocol": "SSL", "ssl_cafile": "/nowhere/ca.pem"},
         "KAFKA_SSL_CAFILE: no file at /nowhere/ca.pem"),
        ({"security_protocol": "SASL_PLAINTEXT", "ssl_cafile": "CA", **sasl()},
         "KAFKA_SSL_CAFILE is set but KAFKA_SECURITY_PROTOCOL is SASL_PLAINTEXT"),
        ({"security_protocol": "SSL", "ssl_keyfile": "KEY"},
         "KAFKA_SSL_KEYFILE is set without KAFKA_SSL_CERTFILE"),
        ({"security_protocol": "TLS"}, "security_protocol"),
        ({"security_protocol": "SASL_SSL", **sasl("GSSAPI")}, "sasl_mechanism"),
    ],
    ids=["no-username", "no-mechanism", "empty-password", "sasl-on-plaintext", "sasl-on-ssl",
         "missing-ca", "tls-file-without-tls", "key-without-cert", "unknown-protocol",
         "unknown-mechanism"],
)  # fmt: skip
def test_an_invalid_combination_is_refused_naming_the_setting(ca, given, expected):
    paths = {"CA": str(ca.cafile), "KEY": str(ca.cafile)}
    given = {k: paths.get(v, v) if isinstance(v, str) else v for k, v in given.items()}
    with pytest.raises(ValidationError) as refused:
        KafkaSettings(**given)
    assert expected in str(refused.value)
    assert PASSWORD not in str(refused.value)


def test_a_service_refuses_to_start_on_a_contradiction(monkeypatch, tmp_path: Path):
    from services.delivery.settings import DeliverySettings

    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", PASSWORD)
    with pytest.raises(ValidationError, match="KAFKA_SASL_USERNAME is required") as refused:
        DeliverySettings()
    assert PASSWORD not in str(refused.value)
