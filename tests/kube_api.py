"""An in-test HTTP server speaking the subset of the Kubernetes REST API the kube
driver uses. No real API server can run on these machines (see the README), so
this one keeps Deployments, StatefulSets, their pods, events and logs in memory
and plays the controllers: a workload scaled to N gets N pods, each Ready after
`ready_after_s` unless its component is in `never_ready` (a readiness probe that
never passes: a Warning event and failing health lines in its log).

Endpoints: list/create/patch Deployments and StatefulSets, patch their /scale,
list pods, read a pod's log, list events; read, create and replace Secrets (with
resourceVersion conflicts, server-side dry runs, and `forbidden_secrets` answering
403 as RBAC would); every write is recorded in `writes`.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

PLURAL_KIND = {"deployments": "Deployment", "statefulsets": "StatefulSet"}
NAME_LABEL = "app.kubernetes.io/name"


def _stamp(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _matches(labels: dict[str, str], selector: str) -> bool:
    for term in filter(None, selector.split(",")):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


class FakeCluster:
    def __init__(self, ready_after_s: float = 0.2):
        self.ready_after_s = ready_after_s
        self.never_ready: set[str] = set()
        self.workloads: dict[tuple[str, str], dict[str, Any]] = {}  # (plural, name) -> object
        self.pods: dict[str, dict[str, Any]] = {}  # name -> {"owner", "created", "component", "object"}
        self.events: list[dict[str, Any]] = []
        self.writes: list[str] = []
        self.secrets: dict[str, dict[str, Any]] = {}  # name -> Secret object
        self.forbidden_secrets: set[str] = set()  # writes answered 403 Forbidden
        self.resource_version = 0
        self.lock = threading.Lock()

    # -- controllers ---------------------------------------------------------------------
    def reconcile(self, plural: str, name: str) -> None:
        workload = self.workloads.get((plural, name))
        want = (workload or {}).get("spec", {}).get("replicas", 0) if workload else 0
        mine = sorted(p for p, v in self.pods.items() if v["owner"] == (plural, name))
        for pod in mine[want:]:
            del self.pods[pod]
        for _ in range(want - len(mine[:want])):
            component = workload["metadata"]["labels"][NAME_LABEL]
            pod_name = f"{name}-{uuid.uuid4().hex[:10]}"
            self.pods[pod_name] = {"owner": (plural, name), "created": time.time(), "component": component}
            self._event(pod_name, "Normal", "Started", f"Started container {component}")

    def _event(self, pod: str, kind: str, reason: str, message: str) -> None:
        now = _stamp(time.time())
        self.events.append(
            {
                "metadata": {"name": f"{pod}.{uuid.uuid4().hex[:8]}", "namespace": "vextrus"},
                "involvedObject": {"kind": "Pod", "name": pod, "namespace": "vextrus"},
                "type": kind,
                "reason": reason,
                "message": message,
                "firstTimestamp": now,
                "lastTimestamp": now,
                "count": 1,
            }
        )

    def pod_ready(self, pod: str) -> bool:
        info = self.pods[pod]
        return (
            info["component"] not in self.never_ready and time.time() - info["created"] >= self.ready_after_s
        )

    def pod_object(self, pod: str) -> dict[str, Any]:
        info = self.pods[pod]
        workload = self.workloads[info["owner"]]
        container = workload["spec"]["template"]["spec"]["containers"][0]
        ready = self.pod_ready(pod)
        started = _stamp(info["created"])
        if not ready and info["component"] in self.never_ready:
            self._event(
                pod, "Warning", "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 503"
            )
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod,
                "namespace": "vextrus",
                "uid": pod,
                "labels": dict(workload["spec"]["template"]["metadata"]["labels"]),
                "creationTimestamp": started,
            },
            "spec": {"containers": [{"name": container["name"], "image": container["image"]}]},
            "status": {
                "phase": "Running",
                "startTime": started,
                "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                "containerStatuses": [
                    {
                        "name": container["name"],
                        "image": container["image"],
                        "imageID": "",
                        "ready": ready,
                        "started": True,
                        "restartCount": 0,
                        "state": {"running": {"startedAt": started}},
                    }
                ],
            },
        }

    def workload_object(self, plural: str, name: str) -> dict[str, Any]:
        workload = json.loads(json.dumps(self.workloads[(plural, name)]))
        mine = [p for p, v in self.pods.items() if v["owner"] == (plural, name)]
        ready = sum(self.pod_ready(p) for p in mine)
        workload["status"] = {
            "replicas": len(mine),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "updatedReplicas": len(mine),
            "observedGeneration": 1,
        }
        return workload

    def log(self, pod: str) -> str:
        info = self.pods[pod]
        lines = [f"{_stamp(info['created'])} Nest application successfully started ({info['component']})"]
        if info["component"] in self.never_ready:
            lines += [
                f"{_stamp(time.time())} ERROR [HealthCheckService] Health Check has failed! "
                '{"process": {"status": "down", "message": "fault injected: unhealthy"}}'
            ] * 3
        return "\n".join(lines) + "\n"


class _Handler(BaseHTTPRequestHandler):
    cluster: FakeCluster

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}")

    def _route(self) -> tuple[list[str], dict[str, list[str]]]:
        url = urlparse(self.path)
        return [p for p in url.path.split("/") if p], parse_qs(url.query)

    def _not_found(self) -> None:
        self._send(
            404,
            {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404},
        )

    def do_GET(self) -> None:
        parts, query = self._route()
        selector = (query.get("labelSelector") or [""])[0]
        c = self.cluster
        with c.lock:
            # /apis/apps/v1/namespaces/{ns}/{plural}
            if len(parts) == 6 and parts[:3] == ["apis", "apps", "v1"] and parts[5] in PLURAL_KIND:
                items = [
                    c.workload_object(pl, n)
                    for (pl, n), w in sorted(c.workloads.items())
                    if pl == parts[5] and _matches(w["metadata"].get("labels", {}), selector)
                ]
                kind = PLURAL_KIND[parts[5]] + "List"
                return self._send(
                    200, {"apiVersion": "apps/v1", "kind": kind, "metadata": {}, "items": items}
                )
            if parts[:2] == ["api", "v1"] and len(parts) == 5 and parts[4] == "pods":
                pods = [c.pod_object(p) for p in sorted(c.pods)]
                items = [p for p in pods if _matches(p["metadata"]["labels"], selector)]
                return self._send(
                    200, {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items}
                )
            if parts[:2] == ["api", "v1"] and len(parts) == 7 and parts[6] == "log":
                if parts[5] not in c.pods:
                    return self._not_found()
                return self._send(200, c.log(parts[5]), "text/plain")
            if parts[:2] == ["api", "v1"] and len(parts) == 6 and parts[4] == "secrets":
                if parts[5] not in c.secrets:
                    return self._not_found()
                return self._send(200, c.secrets[parts[5]])
            if parts[:2] == ["api", "v1"] and len(parts) == 5 and parts[4] == "events":
                return self._send(
                    200, {"apiVersion": "v1", "kind": "EventList", "metadata": {}, "items": c.events}
                )
        return self._not_found()

    def _status(self, code: int, reason: str) -> None:
        status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code}
        self._send(code, status)

    def _write_secret(self, body: dict[str, Any], create: bool, dry_run: bool) -> None:
        c = self.cluster
        name = body["metadata"]["name"]
        if name in c.forbidden_secrets:
            return self._status(403, "Forbidden")
        existing = c.secrets.get(name)
        if create and existing is not None:
            return self._status(409, "AlreadyExists")
        if not create:
            if existing is None:
                return self._not_found()
            if body["metadata"].get("resourceVersion") != existing["metadata"]["resourceVersion"]:
                return self._status(409, "Conflict")
        if dry_run:
            return self._send(200, body)
        c.resource_version += 1
        body["metadata"]["resourceVersion"] = str(c.resource_version)
        body.setdefault("apiVersion", "v1")
        body.setdefault("kind", "Secret")
        c.secrets[name] = body
        c.writes.append(f"{'create' if create else 'replace'} secrets/{name}")
        return self._send(201 if create else 200, body)

    def do_PUT(self) -> None:
        parts, query = self._route()
        with self.cluster.lock:
            if parts[:2] == ["api", "v1"] and len(parts) == 6 and parts[4] == "secrets":
                return self._write_secret(self._body(), create=False, dry_run="dryRun" in query)
        return self._not_found()

    def do_POST(self) -> None:
        parts, query = self._route()
        c = self.cluster
        with c.lock:
            if parts[:2] == ["api", "v1"] and len(parts) == 5 and parts[4] == "secrets":
                return self._write_secret(self._body(), create=True, dry_run="dryRun" in query)
            if len(parts) == 6 and parts[:3] == ["apis", "apps", "v1"] and parts[5] in PLURAL_KIND:
                body = self._body()
                name = body["metadata"]["name"]
                c.writes.append(f"create {parts[5]}/{name}")
                if (parts[5], name) in c.workloads:
                    return self._send(409, {"kind": "Status", "reason": "AlreadyExists", "code": 409})
                body["metadata"].update(uid=uuid.uuid4().hex, creationTimestamp=_stamp(time.time()))
                c.workloads[(parts[5], name)] = body
                c.reconcile(parts[5], name)
                return self._send(201, c.workload_object(parts[5], name))
        return self._not_found()

    def do_PATCH(self) -> None:
        parts, _ = self._route()
        c = self.cluster
        with c.lock:
            if len(parts) >= 7 and parts[:3] == ["apis", "apps", "v1"] and parts[5] in PLURAL_KIND:
                plural, name = parts[5], parts[6]
                if (plural, name) not in c.workloads:
                    return self._not_found()
                body = self._body()
                workload = c.workloads[(plural, name)]
                if len(parts) == 8 and parts[7] == "scale":
                    replicas = int(body["spec"]["replicas"])
                    c.writes.append(f"scale {plural}/{name} {replicas}")
                    workload["spec"]["replicas"] = replicas
                    c.reconcile(plural, name)
                    return self._send(
                        200,
                        {
                            "apiVersion": "autoscaling/v1",
                            "kind": "Scale",
                            "metadata": {"name": name, "namespace": parts[4]},
                            "spec": {"replicas": replicas},
                            "status": {"replicas": replicas},
                        },
                    )
                c.writes.append(f"patch {plural}/{name}")
                _merge(workload, body)
                return self._send(200, c.workload_object(plural, name))
        return self._not_found()


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


class KubeApiServer:
    """The fake API on a loopback port, in a thread; `kubeconfig()` writes a file pointing at it."""

    def __init__(self, cluster: FakeCluster):
        handler = type("Handler", (_Handler,), {"cluster": cluster})
        self.cluster = cluster
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> KubeApiServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def kubeconfig(self, path: Any) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "test", "cluster": {"server": self.url}}],
            "users": [{"name": "runbooks", "user": {"token": "test-token"}}],
            "contexts": [
                {"name": "test", "context": {"cluster": "test", "user": "runbooks", "namespace": "vextrus"}}
            ],
            "current-context": "test",
        }
        path.write_text(json.dumps(config))
