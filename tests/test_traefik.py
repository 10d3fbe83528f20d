"""Traefik 3.7 for real in front of in-test service backends, both variants: the routes
(/api/<service> with the prefix stripped, /graphql to the gateway), the planted variant's faults
and the hardened one's fixes, and the live edge checks (checks/edge.py) failing on planted,
passing on hardened, naming a stopped backend, and naming traefik when it is stopped."""

from __future__ import annotations

import asyncio
import datetime
import http.server
import json
import ssl
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml

from vextrus_nb import checks, edge
from vextrus_nb.checks.execution import run_checks_async
from vextrus_nb.checks.model import CheckResult
from vextrus_nb.config import load_environment, load_inventory
from vextrus_nb.evidence import scrub
from vextrus_nb.sandbox import supervisor, traefik
from vextrus_nb.sandbox.real_servers import RealServer

pytestmark = pytest.mark.servers

SERVICES = ("auth", "finance", "api-gateway")  # the gateway federates the others' subgraphs
SECURITY_CHECKS = (
    "SEC-TRAEFIK-ENTRYPOINTS",
    "SEC-TRAEFIK-TLS-LIVE",
    "SEC-TRAEFIK-REDIRECT",
    "SEC-TRAEFIK-API-EXPOSED",
    "SEC-TRAEFIK-RATELIMIT",
)
EDGE_CHECKS = (*SECURITY_CHECKS, "SVC-ROUTED")


class Backend:
    """One service standing in for a Vextrus one: Terminus-shaped /health, the gateway's
    /graphql; it remembers the paths it saw. Stoppable and restartable on its port."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: list[str] = []
        self.port = supervisor.free_port()
        self._server: http.server.ThreadingHTTPServer | None = None
        self.start()

    def start(self) -> None:
        backend = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                backend.seen.append(self.path)
                if self.path.split("?")[0] == "/graphql":
                    body = {"data": {"_gateway": {"name": backend.name}}}
                else:
                    body = {"status": "ok", "info": {"service": {"status": "up", "name": backend.name}}}
                payload = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@dataclass
class Edge:
    """A running Traefik and the environment (in own_parameters) that points at it."""

    variant: str
    server: RealServer
    env_name: str
    backends: dict[str, Backend] = field(default_factory=dict)

    @property
    def web(self) -> str:
        return f"http://127.0.0.1:{self.server.ports['web']}"

    @property
    def websecure(self) -> str:
        return f"https://127.0.0.1:{self.server.ports['websecure']}"


def write_environment(
    own_parameters: Path, name: str, server: RealServer, backends: dict[str, Backend]
) -> None:
    inventory = load_inventory()
    others = [c.name for c in inventory.services() if c.name not in backends]
    environment = {
        "name": name,
        "description": "Traefik for real in front of in-test backends (tests/test_traefik.py)",
        "driver": "compose",
        "default_host": "127.0.0.1",
        "ports": {
            "traefik": server.ports["api"],
            "traefik-web": server.ports["web"],
            "traefik-websecure": server.ports["websecure"],
            **{n: b.port for n, b in backends.items()},
        },
        "exclude": others,  # the services no backend stands for here
        "probe": {"timeout_s": 5.0},
    }
    (own_parameters / "environments" / f"{name}.yaml").write_text(yaml.safe_dump(environment))


def start_edge(
    root: Path, variant: str, own_parameters: Path, backends: dict[str, Backend], env_name: str
) -> Edge:
    web, websecure, api = supervisor.free_ports(3)
    ports = {n: b.port for n, b in backends.items()}
    server = traefik.start_traefik_for(root, variant, ports, web, websecure, api, inventory=load_inventory())
    write_environment(own_parameters, env_name, server, backends)
    return Edge(variant, server, env_name, backends)


@pytest.fixture(scope="module")
def backends() -> Iterator[dict[str, Backend]]:
    started = {name: Backend(name) for name in SERVICES}
    yield started
    for backend in started.values():
        backend.stop()


@pytest.fixture(scope="module")
def edges(
    backends: dict[str, Backend], own_parameters: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Edge]]:
    started: dict[str, Edge] = {}
    try:
        for variant in traefik.VARIANTS:
            root = tmp_path_factory.mktemp(f"traefik-{variant}")
            started[variant] = start_edge(root, variant, own_parameters, backends, f"edge-{variant}")
        yield started
    finally:
        for running in started.values():
            running.server.stop()


def run_edge_checks(env_name: str, ids: tuple[str, ...] = EDGE_CHECKS) -> dict[str, CheckResult]:
    inventory = load_inventory()
    env = load_environment(env_name, inventory)
    results = asyncio.run(
        run_checks_async(
            checks.select(ids=ids), env, inventory, env.probe.timeout_s, 32, 500, Path("."), scrub.Scrubber()
        )
    )
    return {r.check.id: r for r in results}


def wait_until(condition: object, what: str, timeout: float = 10.0) -> None:
    met, last = supervisor.wait_for(condition, timeout)  # type: ignore[arg-type]
    assert met, f"{what} not within {timeout}s (last error: {last})"


# ---------------------------------------------------------------- routing


@pytest.mark.parametrize("variant", traefik.VARIANTS)
def test_a_service_sees_its_own_path_and_graphql_reaches_the_gateway(
    edges: dict[str, Edge], backends: dict[str, Backend], variant: str
) -> None:
    running = edges[variant]
    certificate = running.server.extra.get("certificate")
    # Hardened: the client trusts the sandbox's own certificate, so this is a verified TLS hop.
    verify: ssl.SSLContext | bool = (
        ssl.create_default_context(cafile=str(certificate)) if certificate else True
    )
    with httpx.Client(verify=verify, follow_redirects=True, timeout=5) as client:
        health = client.get(f"{running.web}/api/auth/health?probe={variant}")
        graphql = client.get(f"{running.web}/graphql")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert f"/health?probe={variant}" in backends["auth"].seen
    assert graphql.json()["data"]["_gateway"]["name"] == "api-gateway"
    expected_scheme = "https" if variant == "hardened" else "http"
    assert health.url.scheme == expected_scheme
    if variant == "hardened":
        assert [r.status_code for r in health.history] == [301]


def test_planted_serves_traefiks_api_on_the_public_entrypoint_and_hardened_does_not(
    edges: dict[str, Edge],
) -> None:
    planted = httpx.get(f"{edges['planted'].web}/api/rawdata", timeout=5)
    assert planted.status_code == 200 and "routers" in planted.json()
    with httpx.Client(verify=False, timeout=5) as client:
        hardened = client.get(f"{edges['hardened'].websecure}/api/rawdata")
    assert hardened.status_code == 404


def test_a_hardened_router_answers_429_past_its_rate_limit_and_planted_has_none(
    edges: dict[str, Edge], backends: dict[str, Backend], tmp_path: Path
) -> None:
    # A limit no machine can stay under (3 at once, then one a minute), so the 429 comes from
    # the limit and not from how fast this machine sends: the reference's 100/s is config.
    web, websecure, api = supervisor.free_ports(3)
    ports = {"finance": backends["finance"].port}
    strict = {"average": 1, "period": "1m", "burst": 3}
    url = f"https://127.0.0.1:{websecure}/api/finance/health"
    with (
        traefik.start_traefik_for(tmp_path, "hardened", ports, web, websecure, api, rate_limit=strict),
        httpx.Client(verify=False, timeout=5) as client,
    ):
        limited = [client.get(url).status_code for _ in range(6)]
    assert limited[:3] == [200, 200, 200] and 429 in limited[3:]
    with httpx.Client(timeout=5) as client:
        unlimited = [client.get(f"{edges['planted'].web}/api/finance/health").status_code for _ in range(6)]
    assert unlimited == [200] * 6


# ---------------------------------------------------------------- the checks


def test_planted_fails_every_edge_security_check_naming_traefik(edges: dict[str, Edge]) -> None:
    results = run_edge_checks(edges["planted"].env_name, SECURITY_CHECKS)
    for check_id in SECURITY_CHECKS:
        assert results[check_id].status == "failed", (check_id, results[check_id].evidence)
        assert results[check_id].subjects == ["traefik"], check_id
    details = {i: " ".join(f.detail for f in r.findings) for i, r in results.items()}
    assert "no websecure entrypoint" in details["SEC-TRAEFIK-ENTRYPOINTS"]
    assert "connection refused" in details["SEC-TRAEFIK-TLS-LIVE"]
    assert "instead of redirecting to https" in details["SEC-TRAEFIK-REDIRECT"]
    assert "/api/rawdata serves Traefik's own API" in details["SEC-TRAEFIK-API-EXPOSED"]
    assert "/dashboard/ serves Traefik's own API" in details["SEC-TRAEFIK-API-EXPOSED"]
    assert "api.insecure=true" in details["SEC-TRAEFIK-API-EXPOSED"]
    assert "router svc-auth@file" in details["SEC-TRAEFIK-RATELIMIT"]
    assert "router dashboard@file" in details["SEC-TRAEFIK-RATELIMIT"]


def test_hardened_passes_every_edge_check(edges: dict[str, Edge]) -> None:
    results = run_edge_checks(edges["hardened"].env_name)
    for check_id in EDGE_CHECKS:
        assert results[check_id].status == "passed", (check_id, results[check_id].findings)
    assert "TLSv1.3" in results["SEC-TRAEFIK-TLS-LIVE"].evidence
    assert "127.0.0.1" in results["SEC-TRAEFIK-TLS-LIVE"].evidence
    assert "4 of 4 route(s)" in results["SVC-ROUTED"].evidence


def test_planted_routes_every_service_too(edges: dict[str, Edge]) -> None:
    result = run_edge_checks(edges["planted"].env_name, ("SVC-ROUTED",))["SVC-ROUTED"]
    assert result.status == "passed", result.findings


def test_an_entrypoint_elsewhere_than_the_environment_says_is_named(
    edges: dict[str, Edge], backends: dict[str, Backend], own_parameters: Path
) -> None:
    hardened = edges["hardened"].server
    write_environment(own_parameters, "edge-moved", hardened, backends)
    path = own_parameters / "environments" / "edge-moved.yaml"
    environment = yaml.safe_load(path.read_text())
    environment["ports"]["traefik-websecure"] = supervisor.free_port()  # where nothing listens
    path.write_text(yaml.safe_dump(environment))
    result = run_edge_checks("edge-moved", ("SEC-TRAEFIK-ENTRYPOINTS",))["SEC-TRAEFIK-ENTRYPOINTS"]
    assert result.status == "failed" and result.subjects == ["traefik"]
    assert f"websecure listens on 127.0.0.1:{hardened.ports['websecure']}" in result.findings[0].detail


def test_a_public_router_added_without_a_rate_limit_is_named_and_its_removal_seen(
    edges: dict[str, Edge], backends: dict[str, Backend]
) -> None:
    hardened = edges["hardened"]
    extra = Path(hardened.server.extra["dynamic_dir"]) / "unlimited.yml"
    route = {
        "rule": "PathPrefix(`/unlimited`)",
        "entryPoints": ["websecure"],
        "service": "auth",
        "tls": {},
    }
    extra.write_text(yaml.safe_dump({"http": {"routers": {"unlimited": route}}}))
    try:

        def named() -> bool:
            result = run_edge_checks(hardened.env_name, ("SEC-TRAEFIK-RATELIMIT",))["SEC-TRAEFIK-RATELIMIT"]
            return result.status == "failed" and "router unlimited@file" in result.findings[0].detail

        wait_until(named, "the unlimited router named by SEC-TRAEFIK-RATELIMIT")
    finally:
        extra.unlink()

    def passes_again() -> bool:
        return run_edge_checks(hardened.env_name, ("SEC-TRAEFIK-RATELIMIT",))["SEC-TRAEFIK-RATELIMIT"].passed

    wait_until(passes_again, "SEC-TRAEFIK-RATELIMIT passing once the router is gone")


@pytest.fixture
def finance_stopped(backends: dict[str, Backend]) -> Iterator[Backend]:
    backends["finance"].stop()
    yield backends["finance"]
    backends["finance"].start()


@pytest.mark.parametrize("variant", traefik.VARIANTS)
def test_a_stopped_backend_is_named_by_svc_routed(
    edges: dict[str, Edge], finance_stopped: Backend, variant: str
) -> None:
    result = run_edge_checks(edges[variant].env_name, ("SVC-ROUTED",))["SVC-ROUTED"]
    assert result.status == "failed"
    assert result.subjects == ["finance"]
    assert "502" in result.findings[0].detail and "Traefik could not reach it" in result.findings[0].detail


def test_a_stopped_traefik_fails_every_edge_check_naming_traefik(
    backends: dict[str, Backend], own_parameters: Path, tmp_path: Path
) -> None:
    stopped = start_edge(tmp_path, "hardened", own_parameters, backends, "edge-stopped")
    assert run_edge_checks("edge-stopped", ("SEC-TRAEFIK-TLS-LIVE",))["SEC-TRAEFIK-TLS-LIVE"].passed
    stopped.server.stop()
    wait_until(lambda: not supervisor.port_open(stopped.server.ports["api"]), "Traefik gone")
    results = run_edge_checks("edge-stopped")
    for check_id in EDGE_CHECKS:
        assert results[check_id].status == "failed", (check_id, results[check_id].evidence)
        assert results[check_id].subjects == ["traefik"], (check_id, results[check_id].findings)


def test_the_edge_checks_do_not_apply_without_a_real_traefik(own_parameters: Path) -> None:
    inventory = load_inventory()
    for name, extra in (
        ("edge-none", {"exclude": ["traefik"]}),
        ("edge-simulated", {"simulated": ["traefik"]}),
    ):
        environment = {"name": name, "driver": "compose", **extra}
        (own_parameters / "environments" / f"{name}.yaml").write_text(yaml.safe_dump(environment))
        load_environment(name, inventory)
        results = run_edge_checks(name)
        assert {r.status for r in results.values()} == {"not_applicable"}, name


# ---------------------------------------------------------------- the pieces


def test_the_certificate_is_for_loopback_its_key_private_and_kept_across_restarts(tmp_path: Path) -> None:
    cert, key = traefik.ensure_certificate(tmp_path / "tls")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "tls").stat().st_mode) == 0o700
    names, not_after = edge._certificate_facts(ssl.PEM_cert_to_DER_cert(cert.read_text()))
    assert set(names) == {"localhost", "127.0.0.1"}
    assert not_after is not None and not_after > datetime.datetime.now(datetime.UTC)
    before = cert.read_bytes()
    assert traefik.ensure_certificate(tmp_path / "tls") == (cert, key)
    assert cert.read_bytes() == before


def test_an_expired_certificate_and_a_temporary_redirect_are_findings() -> None:
    past = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    handshake = edge.Handshake(("127.0.0.1", 1), True, "TLSv1.3", "x", ("localhost",), past)
    assert any("expired" in p for p in edge.handshake_problems(handshake))
    assert any("TLS 1.2" in p for p in edge.handshake_problems(edge.Handshake(("h", 1), True, "TLSv1.1")))
    temporary = edge.Answer("http://h:1/", 302, "https://h:2/")
    assert any("temporary" in p for p in edge.redirect_problems(temporary))
    assert edge.redirect_problems(edge.Answer("http://h:1/", 308, "https://h:2/")) == []
    assert edge.redirect_problems(edge.Answer("http://h:1/", 301, "http://h:2/"))


def test_an_unknown_variant_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown Traefik variant 'open'"):
        traefik.start_traefik_for(tmp_path, "open", {}, 1, 2, 3)
    assert not (tmp_path / "traefik").exists()


def test_the_generated_configuration_is_loopback_only(tmp_path: Path) -> None:
    inventory = load_inventory()
    ports = {c.name: 40000 + i for i, c in enumerate(inventory.services())}
    services = traefik.routed_services(inventory, ports)
    for variant in traefik.VARIANTS:
        static = traefik.static_config(variant, tmp_path, 1, 2, 3)
        assert all(e["address"].startswith("127.0.0.1:") for e in static["entryPoints"].values())
        assert static["global"] == {"checkNewVersion": False, "sendAnonymousUsage": False}
        dynamic = traefik.dynamic_config(variant, services, ports)
        urls = [s["url"] for b in dynamic["http"]["services"].values() for s in b["loadBalancer"]["servers"]]
        assert len(urls) == len(inventory.services())
        assert all(u.startswith("http://127.0.0.1:") for u in urls)
