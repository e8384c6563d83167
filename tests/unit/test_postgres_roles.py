"""The roles table and the password verifier the migrate step sends instead of a password."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from shared.db_roles import SCHEMA_ACCESS, access_of, scram_sha_256_verifier
from shared.settings import PostgresSettings

# RFC 7677's SCRAM-SHA-256 exchange: user "user", password "pencil".
RFC_SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
RFC_AUTH_MESSAGE = (
    b"n=user,r=rOprNGfwEbeRWgbNEkqO,"
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,"
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
)
RFC_CLIENT_PROOF = base64.b64decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
RFC_SERVER_SIGNATURE = base64.b64decode("6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")


def test_the_verifier_accepts_the_rfc_7677_client_and_answers_its_server_signature():
    verifier = scram_sha_256_verifier("pencil", salt=RFC_SALT)
    method, rest = verifier.split("$", 1)
    iterations_salt, keys = rest.split("$")
    stored_key, server_key = (base64.b64decode(k) for k in keys.split(":"))
    assert method == "SCRAM-SHA-256"
    assert iterations_salt == "4096:W22ZaJ0SNY7soEsUEjb6gQ=="
    # What Postgres does with the stored verifier when the RFC's client logs in:
    client_signature = hmac.digest(stored_key, RFC_AUTH_MESSAGE, "sha256")
    client_key = bytes(a ^ b for a, b in zip(RFC_CLIENT_PROOF, client_signature, strict=True))
    assert hashlib.sha256(client_key).digest() == stored_key
    assert hmac.digest(server_key, RFC_AUTH_MESSAGE, "sha256") == RFC_SERVER_SIGNATURE


def test_each_verifier_has_a_fresh_salt():
    assert scram_sha_256_verifier("pw") != scram_sha_256_verifier("pw")


@pytest.mark.parametrize("password", ["", "pässword"])
def test_an_empty_or_non_ascii_password_is_refused(password):
    with pytest.raises(ValueError, match="ASCII"):
        scram_sha_256_verifier(password)


def test_every_reader_is_a_schema_with_a_role_and_no_schema_reads_itself():
    schemas = [entry.schema for entry in SCHEMA_ACCESS]
    assert len(schemas) == len(set(schemas))
    for entry in SCHEMA_ACCESS:
        assert set(entry.readers) <= set(schemas) - {entry.schema}


def test_delivery_and_the_runner_read_only_the_registry_tables_they_need():
    assert access_of("registry").readers == {
        "delivery": ("webhooks",),
        "workflow": ("workflow_versions",),
    }


def test_a_schema_without_a_line_is_named_in_the_error():
    with pytest.raises(LookupError, match="schema audit has no line"):
        access_of("audit")


def test_role_passwords_and_migrate_on_start_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("ROOMHOOKS_MIGRATE_ON_START", "false")
    monkeypatch.setenv("ROOMHOOKS_PG_ROLE_PASSWORDS", '{"delivery": "pw-1"}')
    settings = PostgresSettings()
    assert settings.migrate_on_start is False
    assert settings.role_passwords["delivery"].get_secret_value() == "pw-1"
    assert "pw-1" not in repr(settings)


def test_a_role_prefix_that_is_no_plain_identifier_is_refused():
    with pytest.raises(ValueError, match="role_prefix"):
        PostgresSettings(role_prefix='x"; DROP ROLE postgres; --')
