"""The Kubernetes manifests of the Vextrus platform (deploy/k8s/phase-N-*.yaml), written
from the inventory and the hardened compose file's images, so the two deployments run
the same versions. `python -m vextrus_nb.deploy.manifests` rewrites them; a test checks
the committed files match and pass the checklist's static checks.

Each component is one workload named after it (StatefulSet for the datastores and
brokers, Deployment otherwise) plus a Service, labelled app.kubernetes.io/name=<component>
and part-of=vextrus: the kube driver finds workloads by those labels. Every container
has requests and limits, readiness and liveness probes, and its secrets by secretKeyRef.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from vextrus_nb import paths
from vextrus_nb.config import Component, Inventory, load_inventory
from vextrus_nb.credentials import (
    JWT_KEY_SECRET,
    acl_user_name,
    pg_role_name,
    pg_secret_name,
    redis_secret_name,
)
from vextrus_nb.deploy.phases import load_phases

NAMESPACE = "vextrus"
STATEFUL = {"postgres", "redis", "elasticsearch", "zookeeper", "kafka", "rabbitmq", "minio", "eventstore"}
COMPOSE_FILE = Path("deploy") / "sandbox" / "hardened" / "docker-compose.yml"
PART_OF = "app.kubernetes.io/part-of"
NAME_LABEL = "app.kubernetes.io/name"


# The services' own credentials, in the one Secret the rotation runbook's store writes
# (parameters/environments/production.yaml: rotation.store); `<key>.pending` and
# `<key>.previous` are the versions a rotation adds and retires.
CREDENTIALS_SECRET = "vextrus-credentials"


def _secret(name: str, secret: str, key: str = "password", optional: bool = False) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": secret, "key": key}
    if optional:
        ref["optional"] = True
    return {"name": name, "valueFrom": {"secretKeyRef": ref}}


def _env(component: Component) -> list[dict[str, Any]]:
    name = component.name
    if component.kind == "service":
        env: list[dict[str, Any]] = [{"name": "PORT", "value": str(component.port)}]
        if component.database:
            env += [
                {"name": "DATABASE_HOST", "value": "postgres"},
                {"name": "DATABASE_NAME", "value": component.database},
                {"name": "DATABASE_USER", "value": pg_role_name(name)},
                _secret("DATABASE_PASSWORD", CREDENTIALS_SECRET, pg_secret_name(name)),
            ]
        if "redis" in component.depends_on:
            env += [
                {"name": "REDIS_USERNAME", "value": acl_user_name(name)},
                _secret("REDIS_PASSWORD", CREDENTIALS_SECRET, redis_secret_name(name)),
            ]
        # Every service verifies tokens with the current key and, during a rotation, the
        # pending one (published before signing switches) and the previous one (its grace period).
        key = JWT_KEY_SECRET
        env += [
            _secret("JWT_SIGNING_KEY", CREDENTIALS_SECRET, key),
            _secret("JWT_VERIFY_KEY_PENDING", CREDENTIALS_SECRET, f"{key}.pending", optional=True),
            _secret("JWT_VERIFY_KEY_PREVIOUS", CREDENTIALS_SECRET, f"{key}.previous", optional=True),
        ]
        if component.subgraphs:
            env.append({"name": "SUBGRAPHS", "value": ",".join(component.subgraphs)})
        return env
    return {
        "postgres": [
            {"name": "POSTGRES_USER", "value": "vextrus_admin"},
            _secret("POSTGRES_PASSWORD", "vextrus-postgres"),
        ],
        "redis": [_secret("REDIS_PASSWORD", "vextrus-redis"), _secret("REDISCLI_AUTH", "vextrus-redis")],
        "elasticsearch": [
            {"name": "discovery.type", "value": "single-node"},
            {"name": "xpack.security.enabled", "value": "true"},
            _secret("ELASTIC_PASSWORD", "vextrus-elasticsearch"),
        ],
        "kafka": [
            {"name": "KAFKA_ZOOKEEPER_CONNECT", "value": "zookeeper:2181"},
            {"name": "KAFKA_AUTO_CREATE_TOPICS_ENABLE", "value": "false"},
            {"name": "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "value": "3"},
        ],
        "zookeeper": [{"name": "ZOOKEEPER_CLIENT_PORT", "value": "2181"}],
        "rabbitmq": [
            {"name": "RABBITMQ_DEFAULT_USER", "value": "vextrus"},
            _secret("RABBITMQ_DEFAULT_PASS", "vextrus-rabbitmq"),
        ],
        "minio": [
            _secret("MINIO_ROOT_USER", "vextrus-minio", "access-key"),
            _secret("MINIO_ROOT_PASSWORD", "vextrus-minio", "secret-key"),
        ],
        "temporal": [
            {"name": "DB", "value": "postgres12"},
            {"name": "POSTGRES_SEEDS", "value": "postgres"},
            {"name": "POSTGRES_USER", "value": "temporal"},
            _secret("POSTGRES_PWD", "vextrus-db-temporal"),
        ],
        "temporal-ui": [{"name": "TEMPORAL_ADDRESS", "value": "temporal:7233"}],
        "grafana": [_secret("GF_SECURITY_ADMIN_PASSWORD", "vextrus-grafana")],
    }.get(name, [])


def _probes(component: Component) -> dict[str, Any]:
    port = component.port
    timing = {"periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 3}
    if component.kind == "service":
        return {
            "readinessProbe": {"httpGet": {"path": "/health/ready", "port": port}, **timing},
            "livenessProbe": {
                "httpGet": {"path": "/health/live", "port": port},
                "initialDelaySeconds": 20,
                **timing,
            },
        }
    if component.name == "postgres":
        check: dict[str, Any] = {"exec": {"command": ["pg_isready", "-U", "vextrus_admin"]}}
    elif component.name == "redis":
        check = {"exec": {"command": ["redis-cli", "ping"]}}  # REDISCLI_AUTH comes from the Secret
    elif component.health_path:  # MinIO's /minio/health/live too, though sweeps speak S3 to it
        check = {"httpGet": {"path": component.health_path, "port": port}}
    else:
        check = {"tcpSocket": {"port": port}}
    return {
        "readinessProbe": {**check, **timing},
        "livenessProbe": {**check, "initialDelaySeconds": 30, **timing},
    }


def _resources(component: Component) -> dict[str, Any]:
    big = {
        "postgres": ("2", "8Gi"),
        "elasticsearch": ("2", "4Gi"),
        "kafka": ("2", "4Gi"),
        "redis": ("1", "2560Mi"),
    }
    cpu, memory = big.get(component.name, ("1", "768Mi"))
    return {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": cpu, "memory": memory}}


def workload(component: Component, image: str, args: list[str] | None = None) -> dict[str, Any]:
    labels = {NAME_LABEL: component.name, PART_OF: "vextrus", "vextrus.io/phase": str(component.phase)}
    container: dict[str, Any] = {
        "name": component.name,
        "image": image,
        "ports": [{"containerPort": component.port}],
        "env": _env(component),
        "resources": _resources(component),
        **_probes(component),
    }
    if args:
        container["args"] = args
    stateful = component.name in STATEFUL
    spec: dict[str, Any] = {
        "replicas": 2 if component.kind == "service" else 1,
        "selector": {"matchLabels": {NAME_LABEL: component.name}},
        "template": {"metadata": {"labels": dict(labels)}, "spec": {"containers": [container]}},
    }
    if stateful:
        spec["serviceName"] = component.name
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet" if stateful else "Deployment",
        "metadata": {"name": component.name, "namespace": NAMESPACE, "labels": dict(labels)},
        "spec": spec,
    }


def service(component: Component) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": component.name,
            "namespace": NAMESPACE,
            "labels": {NAME_LABEL: component.name, PART_OF: "vextrus"},
        },
        "spec": {
            "selector": {NAME_LABEL: component.name},
            "ports": [{"port": component.port, "targetPort": component.port}],
        },
    }


def documents(inventory: Inventory, phase: int) -> list[dict[str, Any]]:
    compose = yaml.safe_load((paths.project_root() / COMPOSE_FILE).read_text())["services"]
    found = []
    for component in inventory.phase(phase):
        if component.kind == "dev_tool":
            continue
        spec = compose[component.name]
        args = spec.get("command") if component.name == "traefik" else None
        found += [workload(component, spec["image"], args), service(component)]
    return found


class _PlainDumper(yaml.SafeDumper):
    """No &anchors/*aliases for repeated values: a manifest is read by people and by kubectl."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def write_all(directory: Path | None = None) -> list[Path]:
    folder = directory or paths.project_root() / "deploy" / "k8s"
    folder.mkdir(parents=True, exist_ok=True)
    inventory = load_inventory()
    written = []
    for number, spec in load_phases().items():
        path = folder / f"{spec.notebook.replace(f'{number:02d}-', f'phase-{number}-')}.yaml"
        header = (
            f"# Vextrus ERP on Kubernetes, deployment phase {number} ({spec.title}); run by "
            f"notebooks/deploy/{spec.notebook}.ipynb.\n# Written by vextrus_nb.deploy.manifests from the "
            "inventory; edit the generator, not this file.\n"
        )
        body = yaml.dump_all(documents(inventory, number), Dumper=_PlainDumper, sort_keys=False, width=120)
        path.write_text(header + body)
        written.append(path)
    return written


if __name__ == "__main__":
    for written in write_all():
        print(written)
