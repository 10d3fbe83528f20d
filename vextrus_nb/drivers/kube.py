"""The kube driver: the platform on Kubernetes, through the official `kubernetes` client.

Each component is one Deployment or StatefulSet named after it and labelled
app.kubernetes.io/name=<component>, app.kubernetes.io/part-of=vextrus (as
deploy/k8s writes them). Starting scales the workload to the replica count of
its manifest, or creates it from the manifest when it does not exist yet;
stopping scales it to zero; restarting is what `kubectl rollout restart` does
(a restartedAt annotation on the pod template). Health is the workload's ready
replicas against its desired ones, with the pods' waiting reasons and the
namespace's events as the detail; logs are the newest pod's.

The environment says where: deployment.kubeconfig (a file; `{sandbox_dir}`
and checkout-relative paths work) and deployment.namespace (default vextrus);
with no kubeconfig, the in-cluster service account, else ~/.kube/config.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from vextrus_nb import paths
from vextrus_nb.config import Environment
from vextrus_nb.drivers.base import (
    ComponentState,
    HealthState,
    LogLine,
    PlatformEvent,
    RunState,
)
from vextrus_nb.errors import DriverError, DriverUnavailable, first_line

NAME_LABEL = "app.kubernetes.io/name"
PART_OF_SELECTOR = "app.kubernetes.io/part-of=vextrus"
WORKLOAD_KINDS = ("Deployment", "StatefulSet")
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
# Waiting reasons that will not fix themselves by waiting longer.
BROKEN_REASONS = ("CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError")


@dataclass
class KubeDriver:
    api_client: Any = field(repr=False)
    namespace: str
    manifests: Path | None
    name: str = "kube"

    @classmethod
    def for_environment(cls, env: Environment) -> KubeDriver:
        from kubernetes import client, config

        configuration = client.Configuration()
        try:
            if kubeconfig := env.deployment.get("kubeconfig"):
                path = Path(kubeconfig.format(sandbox_dir=paths.sandbox_dir()))
                path = path if path.is_absolute() else paths.project_root() / path
                config.load_kube_config(config_file=str(path), client_configuration=configuration)
            elif os.environ.get("KUBERNETES_SERVICE_HOST"):
                config.load_incluster_config(client_configuration=configuration)
            else:
                config.load_kube_config(client_configuration=configuration)
        except Exception as exc:
            raise DriverUnavailable(f"no Kubernetes API configuration: {first_line(exc)}") from None
        api_client = client.ApiClient(configuration)
        namespace = env.deployment.get("namespace", "vextrus")
        try:
            client.CoreV1Api(api_client).list_namespaced_pod(
                namespace, label_selector=PART_OF_SELECTOR, limit=1
            )
        except Exception as exc:
            raise DriverUnavailable(f"cannot reach the Kubernetes API: {first_line(exc)}") from None
        return cls(api_client, namespace, env.deployment_files().get("kube_manifests"))

    # -- API handles ------------------------------------------------------------------
    @property
    def apps(self) -> Any:
        from kubernetes import client

        return client.AppsV1Api(self.api_client)

    @property
    def core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.api_client)

    def workloads(self) -> dict[str, Any]:
        """The platform's Deployments and StatefulSets by component."""
        found: dict[str, Any] = {}
        for listing in (
            self.apps.list_namespaced_deployment(self.namespace, label_selector=PART_OF_SELECTOR),
            self.apps.list_namespaced_stateful_set(self.namespace, label_selector=PART_OF_SELECTOR),
        ):
            for item in listing.items:
                found[(item.metadata.labels or {}).get(NAME_LABEL, item.metadata.name)] = item
        return found

    def pods(self) -> dict[str, list[Any]]:
        grouped: dict[str, list[Any]] = {}
        for pod in self.core.list_namespaced_pod(self.namespace, label_selector=PART_OF_SELECTOR).items:
            grouped.setdefault((pod.metadata.labels or {}).get(NAME_LABEL, "?"), []).append(pod)
        return grouped

    # -- inspection (read-only) -------------------------------------------------------
    def health(self, components: list[str]) -> dict[str, HealthState]:
        workloads, pods = self.workloads(), self.pods()
        states = {}
        for name in components:
            item = workloads.get(name)
            if item is None:
                states[name] = HealthState(
                    name, "absent", f"no Deployment or StatefulSet in {self.namespace}"
                )
                continue
            desired = item.spec.replicas or 0
            ready = (item.status.ready_replicas if item.status else 0) or 0
            if desired == 0:
                states[name] = HealthState(name, "stopped", "scaled to 0")
            elif ready >= desired:
                states[name] = HealthState(name, "healthy", f"{ready}/{desired} ready")
            else:
                broken = [r for r in _waiting_reasons(pods.get(name, [])) if r in BROKEN_REASONS]
                detail = f"{ready}/{desired} ready" + (
                    f"; {', '.join(sorted(set(broken)))}" if broken else ""
                )
                states[name] = HealthState(name, "unhealthy" if broken else "starting", detail)
        return states

    def status(self, components: list[str]) -> dict[str, ComponentState]:
        workloads, pods = self.workloads(), self.pods()
        states = {}
        for name in components:
            running = pods.get(name, [])
            statuses = [
                s for p in running for s in ((p.status.container_statuses if p.status else None) or [])
            ]
            restarts = sum(s.restart_count or 0 for s in statuses)
            terminated = [
                s.last_state.terminated for s in statuses if s.last_state and s.last_state.terminated
            ]
            started = [p.status.start_time for p in running if p.status and p.status.start_time]
            state: RunState
            if name not in workloads:
                state, detail = "stopped", "no workload"
            elif any(p.status and p.status.phase == "Running" for p in running):
                state, detail = "running", f"{len(running)} pod(s)"
            elif running:
                state, detail = "restarting", ", ".join(sorted({p.status.phase for p in running if p.status}))
            else:
                state, detail = "stopped", "no pods"
            states[name] = ComponentState(
                component=name,
                state=state,
                restarts=restarts,
                exit_code=terminated[-1].exit_code if terminated else None,
                oom_killed=any(t.reason == "OOMKilled" for t in terminated),
                started_at=max(started) if started else None,
                detail=detail,
            )
        return states

    def events(self, since: datetime) -> list[PlatformEvent]:
        names = sorted(self.workloads(), key=len, reverse=True)
        found = []
        for event in self.core.list_namespaced_event(self.namespace).items:
            at = event.last_timestamp or event.event_time or event.first_timestamp
            if at is None or at < since:
                continue
            involved = event.involved_object.name or ""
            component = next((n for n in names if involved == n or involved.startswith(f"{n}-")), involved)
            found.append(
                PlatformEvent(at, component, event.type or "Normal", event.reason or "", event.message or "")
            )
        return sorted(found, key=lambda e: e.at)

    def logs(self, component: str, since: datetime, lines: int = 200) -> list[LogLine]:
        running = self.pods().get(component, [])
        if not running:
            return []
        newest = max(running, key=lambda p: p.metadata.creation_timestamp or datetime.min.replace(tzinfo=UTC))
        seconds = max(1, int((datetime.now(UTC) - since).total_seconds()) + 1)
        text = self.core.read_namespaced_pod_log(
            newest.metadata.name, self.namespace, since_seconds=seconds, tail_lines=lines, timestamps=True
        )
        result = []
        for raw in str(text).splitlines():
            stamp, _, rest = raw.partition(" ")
            at = _api_time(stamp)
            result.append(LogLine(at, component, rest if at else raw))
        return result

    # -- control ------------------------------------------------------------------------
    def start(self, components: list[str]) -> None:
        existing = self.workloads()
        for name in components:
            manifest = self.manifest(name)
            if name in existing:
                desired = (manifest or {}).get("spec", {}).get("replicas") or 1
                self._scale(name, existing[name], desired)
            elif manifest is not None:
                from kubernetes import utils

                utils.create_from_dict(self.api_client, manifest, namespace=self.namespace)
            else:
                raise DriverError(
                    f"{name}: no workload in {self.namespace} and no manifest for it in {self.manifests}"
                )

    def stop(self, components: list[str]) -> None:
        existing = self.workloads()
        for name in components:
            if name in existing:
                self._scale(name, existing[name], 0)

    def restart(self, components: list[str]) -> None:
        existing = self.workloads()
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        body = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
        for name in components:
            item = existing.get(name)
            if item is None:
                raise DriverError(f"{name}: no workload to restart in {self.namespace}")
            if item.kind == "StatefulSet" or type(item).__name__ == "V1StatefulSet":
                self.apps.patch_namespaced_stateful_set(item.metadata.name, self.namespace, body)
            else:
                self.apps.patch_namespaced_deployment(item.metadata.name, self.namespace, body)

    def _scale(self, name: str, item: Any, replicas: int) -> None:
        body = {"spec": {"replicas": replicas}}
        if type(item).__name__ == "V1StatefulSet":
            self.apps.patch_namespaced_stateful_set_scale(item.metadata.name, self.namespace, body)
        else:
            self.apps.patch_namespaced_deployment_scale(item.metadata.name, self.namespace, body)

    def manifest(self, component: str) -> dict[str, Any] | None:
        """The component's workload in the environment's manifests (deployment.kube_manifests)."""
        if self.manifests is None or not self.manifests.exists():
            return None
        files = [self.manifests] if self.manifests.is_file() else sorted(self.manifests.glob("*.y*ml"))
        for path in files:
            for document in yaml.safe_load_all(path.read_text()):
                if (
                    isinstance(document, dict)
                    and document.get("kind") in WORKLOAD_KINDS
                    and (document.get("metadata") or {}).get("name") == component
                ):
                    return document
        return None


def _waiting_reasons(pods: list[Any]) -> list[str]:
    reasons = []
    for pod in pods:
        for status in (pod.status.container_statuses if pod.status else None) or []:
            if status.state and status.state.waiting and status.state.waiting.reason:
                reasons.append(status.state.waiting.reason)
    return reasons


def _api_time(stamp: str) -> datetime | None:
    head, _, fraction = stamp.rstrip("Z").partition(".")
    try:
        moment = datetime.fromisoformat(head + (f".{fraction[:6]}" if fraction else ""))
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
