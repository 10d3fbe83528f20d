"""Read the deployment files an environment names (a compose file, a directory
of Kubernetes manifests) into one shape the static checks can judge:
a Workload per compose service or per Kubernetes container. From manifests also
a KubePod per workload object (its pod template's labels, replicas and security
contexts, init containers included) and the other objects the manifests checks
judge (NetworkPolicy, HorizontalPodAutoscaler, PodDisruptionBudget, Service).

A literal secret's value is kept only to know that it is literal; nothing
here or in the checks ever shows it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vextrus_nb.config import SAFE_LOADER, Environment, describe_yaml_error
from vextrus_nb.errors import ConfigError

BATCH_KINDS = ("Job", "CronJob")
KUBE_WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod", "ReplicaSet")
# The objects around the workloads that the manifests checks read (checks/manifests.py).
KUBE_OBJECT_KINDS = ("NetworkPolicy", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service")


@dataclass(frozen=True)
class EnvVar:
    name: str
    literal: bool  # a value written into the file, rather than ${VAR}, a *_FILE path or a secretKeyRef


@dataclass(frozen=True)
class Workload:
    name: str
    source: str  # "docker-compose.yml" or "k8s/finance.yaml (Deployment finance)"
    image: str | None
    built_locally: bool = False
    env: tuple[EnvVar, ...] = ()
    env_values: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    cpu_limit: str | None = None
    memory_limit: str | None = None
    healthcheck: bool = False
    args: tuple[str, ...] = ()
    enabled_by_default: bool = True
    platform: str = "compose"  # compose | kube
    # A Job or CronJob runs to completion: no traffic to route, nothing for a probe to restart.
    long_running: bool = True

    def env_value(self, name: str) -> str | None:
        """A non-secret setting's value (Elasticsearch's xpack flag, Traefik's options)."""
        return self.env_values.get(name)


@dataclass(frozen=True)
class ContainerSecurity:
    """One container's effective security settings: its own securityContext over the pod's."""

    name: str
    init: bool
    run_as_non_root: bool | None
    run_as_user: int | None
    read_only_root_filesystem: bool
    scratch_mounts: tuple[str, ...] = ()  # where an emptyDir is mounted: what may write with a read-only root


@dataclass(frozen=True)
class KubePod:
    """A workload object of the manifests, as the checks on pods see it."""

    kind: str
    name: str
    namespace: str | None
    source: str  # "k8s/phase-6-core-services.yaml (Deployment finance)"
    replicas: int | None  # None: not a replicated kind (Job, CronJob, Pod, DaemonSet)
    labels: dict[str, str] = field(default_factory=dict, compare=False)
    containers: tuple[ContainerSecurity, ...] = ()
    workloads: tuple[Workload, ...] = ()  # its (non-init) containers, as in DeploymentFiles.workloads

    @property
    def long_running(self) -> bool:
        return self.kind not in BATCH_KINDS


@dataclass(frozen=True)
class KubeObject:
    """A NetworkPolicy, HorizontalPodAutoscaler, PodDisruptionBudget or Service."""

    kind: str
    name: str
    namespace: str | None
    source: str
    spec: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class DeploymentFiles:
    files: tuple[str, ...]
    workloads: tuple[Workload, ...]
    pods: tuple[KubePod, ...] = ()
    kube_objects: tuple[KubeObject, ...] = ()
    kube_manifests: str | None = None  # the directory read, when the environment names one

    def objects(self, kind: str) -> list[KubeObject]:
        return [o for o in self.kube_objects if o.kind == kind]


def _is_reference(name: str, value: str) -> bool:
    return "${" in value or name.upper().endswith("_FILE") or value.startswith("$(")


def _compose_env(raw: Any) -> tuple[tuple[EnvVar, ...], dict[str, str]]:
    pairs: list[tuple[str, str | None]] = []
    if isinstance(raw, dict):
        pairs = [
            (str(k), None if v is None else str(v).lower() if isinstance(v, bool) else str(v))
            for k, v in raw.items()
        ]
    elif isinstance(raw, list):
        for item in raw:
            name, sep, value = str(item).partition("=")
            pairs.append((name, value if sep else None))
    variables = tuple(EnvVar(n, v is not None and v != "" and not _is_reference(n, v)) for n, v in pairs)
    return variables, {n: v for n, v in pairs if v is not None}


def _tokens(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        return tuple(raw.split())
    return tuple(str(t) for t in raw)


def _compose_workloads(path: Path, relative: str) -> list[Workload]:
    documents = _load_yaml_documents(path)
    data = documents[0] if documents else None
    if not isinstance(data, dict) or not isinstance(data.get("services"), dict):
        raise ConfigError(f"{path} has no 'services' mapping: is it a compose file?")
    workloads = []
    for name, spec in data["services"].items():
        spec = spec or {}
        limits = ((spec.get("deploy") or {}).get("resources") or {}).get("limits") or {}
        check = spec.get("healthcheck") or {}
        env, values = _compose_env(spec.get("environment"))
        workloads.append(
            Workload(
                name=str(name),
                source=relative,
                image=spec.get("image"),
                built_locally="build" in spec,
                env=env,
                env_values=values,
                cpu_limit=str(limits.get("cpus") or spec.get("cpus") or "") or None,
                memory_limit=str(limits.get("memory") or spec.get("mem_limit") or "") or None,
                healthcheck=bool(check.get("test"))
                and not check.get("disable")
                and check.get("test") != ["NONE"],
                args=_tokens(spec.get("entrypoint")) + _tokens(spec.get("command")),
                enabled_by_default=not spec.get("profiles"),
            )
        )
    return workloads


def _pod_spec(document: dict[str, Any]) -> dict[str, Any]:
    kind, spec = document.get("kind"), document.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    return ((spec.get("template") or {}).get("spec")) or {}


def _kube_env(raw: Any) -> tuple[tuple[EnvVar, ...], dict[str, str]]:
    variables, values = [], {}
    for item in raw or []:
        name = str(item.get("name"))
        if "value" in item and item["value"] not in (None, ""):
            value = str(item["value"])
            variables.append(EnvVar(name, not _is_reference(name, value)))
            values[name] = value
        else:
            variables.append(EnvVar(name, False))
    return tuple(variables), values


def _kube_workloads(document: dict[str, Any], relative: str) -> list[Workload]:
    name = str((document.get("metadata") or {}).get("name", "?"))
    containers = _pod_spec(document).get("containers") or []
    workloads = []
    for container in containers:
        limits = (container.get("resources") or {}).get("limits") or {}
        env, values = _kube_env(container.get("env"))
        label = name if len(containers) == 1 else f"{name}/{container.get('name')}"
        workloads.append(
            Workload(
                name=label,
                source=f"{relative} ({document.get('kind')} {name})",
                image=container.get("image"),
                env=env,
                env_values=values,
                cpu_limit=str(limits["cpu"]) if "cpu" in limits else None,
                memory_limit=str(limits["memory"]) if "memory" in limits else None,
                healthcheck="readinessProbe" in container and "livenessProbe" in container,
                args=_tokens(container.get("command")) + _tokens(container.get("args")),
                platform="kube",
                long_running=document.get("kind") not in BATCH_KINDS,
            )
        )
    return workloads


def _security_context(raw: Any) -> dict[str, Any]:
    return raw if isinstance(raw, dict) else {}


def _integer(raw: Any, default: int | None = None) -> int | None:
    """An integer field; a value that is not one (a template placeholder) counts as absent."""
    try:
        return default if raw is None else int(raw)
    except (TypeError, ValueError):
        return default


def _kube_pod(document: dict[str, Any], relative: str, workloads: list[Workload]) -> KubePod:
    metadata = document.get("metadata") or {}
    name = str(metadata.get("name", "?"))
    pod = _pod_spec(document)
    pod_context = _security_context(pod.get("securityContext"))
    scratch = {v.get("name") for v in pod.get("volumes") or [] if isinstance(v, dict) and "emptyDir" in v}
    containers = []
    for init, key in ((True, "initContainers"), (False, "containers")):
        for container in pod.get(key) or []:
            own = _security_context(container.get("securityContext"))
            non_root = own.get("runAsNonRoot", pod_context.get("runAsNonRoot"))
            user = own.get("runAsUser", pod_context.get("runAsUser"))
            containers.append(
                ContainerSecurity(
                    name=str(container.get("name", "?")),
                    init=init,
                    run_as_non_root=None if non_root is None else bool(non_root),
                    run_as_user=_integer(user),
                    read_only_root_filesystem=own.get("readOnlyRootFilesystem") is True,
                    scratch_mounts=tuple(
                        str(m.get("mountPath"))
                        for m in container.get("volumeMounts") or []
                        if m.get("name") in scratch
                    ),
                )
            )
    kind = str(document.get("kind"))
    replicated = kind in ("Deployment", "StatefulSet", "ReplicaSet")
    template_labels = ((document.get("spec") or {}).get("template") or {}).get("metadata") or {}
    labels = metadata.get("labels") if kind == "Pod" else template_labels.get("labels")
    if kind == "CronJob":
        job = ((document.get("spec") or {}).get("jobTemplate") or {}).get("spec") or {}
        labels = ((job.get("template") or {}).get("metadata") or {}).get("labels")
    return KubePod(
        kind=kind,
        name=name,
        namespace=metadata.get("namespace"),
        source=f"{relative} ({kind} {name})",
        # Kubernetes' default is one replica when the field is absent.
        replicas=_integer((document.get("spec") or {}).get("replicas"), 1) if replicated else None,
        labels={str(k): str(v) for k, v in (labels or {}).items()},
        containers=tuple(containers),
        workloads=tuple(workloads),
    )


def _kube_object(document: dict[str, Any], relative: str) -> KubeObject:
    metadata = document.get("metadata") or {}
    name = str(metadata.get("name", "?"))
    return KubeObject(
        kind=str(document.get("kind")),
        name=name,
        namespace=metadata.get("namespace"),
        source=f"{relative} ({document.get('kind')} {name})",
        spec=document.get("spec") or {},
    )


def _load_yaml_documents(path: Path) -> list[Any]:
    try:
        return list(yaml.load_all(path.read_text(), Loader=SAFE_LOADER))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(describe_yaml_error(path, exc)) from None


def load(env: Environment) -> DeploymentFiles:
    """Every workload in the files the environment names; a ConfigError says what is missing."""
    named = env.deployment_files()
    if not named:
        raise ConfigError(
            f"environment '{env.name}' names no deployment files (deployment.compose_file or "
            "deployment.kube_manifests)"
        )
    files: list[str] = []
    workloads: list[Workload] = []
    pods: list[KubePod] = []
    objects: list[KubeObject] = []
    if "compose_file" in named:
        path = named["compose_file"]
        if not path.is_file():
            raise ConfigError(f"compose file {path} not found")
        files.append(str(path))
        workloads += _compose_workloads(path, path.name)
    if "kube_manifests" in named:
        root = named["kube_manifests"]
        manifests = sorted([*root.rglob("*.yaml"), *root.rglob("*.yml")]) if root.is_dir() else []
        if not manifests:
            raise ConfigError(f"no Kubernetes manifests (*.yaml) under {root}")
        for manifest in manifests:
            files.append(str(manifest))
            relative = str(manifest.relative_to(root.parent))
            for document in _load_yaml_documents(manifest):
                if not isinstance(document, dict):
                    continue
                if document.get("kind") in KUBE_WORKLOAD_KINDS:
                    containers = _kube_workloads(document, relative)
                    workloads += containers
                    pods.append(_kube_pod(document, relative, containers))
                elif document.get("kind") in KUBE_OBJECT_KINDS:
                    objects.append(_kube_object(document, relative))
    return DeploymentFiles(
        tuple(files),
        tuple(workloads),
        tuple(pods),
        tuple(objects),
        str(named["kube_manifests"]) if "kube_manifests" in named else None,
    )
