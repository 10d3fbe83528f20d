"""The sandbox's observability stack: Prometheus scraping the platform, loaded with the project's
alert rules (deploy/prometheus/alerts.yml), and Alertmanager routing what fires to a webhook.

The scrape configuration is built from the inventory and the sandbox's ports map: one job per
component, named after it, and every target labelled `component` and `criticality`, because the
rules key on those (`up{criticality="critical"} == 0`) and so does whoever reads an alert.

Modelled on real_servers.start_prometheus / start_alertmanager, which cannot be given a port:
the sandbox restarts a server on the port it had before a fault, so here ports are passable
(free ones chosen otherwise) and the data directories under root are kept across restarts
(`heal` brings a server back with its data). Loopback only: every address, the evidence
exporter's and the webhook's included, must be 127.0.0.1.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from vextrus_nb import paths
from vextrus_nb.config import Inventory, load_inventory
from vextrus_nb.errors import ConfigError
from vextrus_nb.sandbox import real_servers, supervisor
from vextrus_nb.sandbox.real_servers import LOOPBACK, RealServer

EVIDENCE_COMPONENT = "evidence"
"""The job and component label of the evidence exporter (vextrus_nb/evidence/metrics.py)."""

EVIDENCE_CRITICALITY = "high"
"""Not "critical": it is not part of the platform, so its loss must not page as an outage; the
rules have their own alert for it (VextrusEvidenceExporterDown), since every evidence alert is
blind while it is down."""

DEFAULT_INTERVAL = "1s"
"""Scrape and rule evaluation interval: the sandbox wants a fault seen within seconds."""


def rules_path() -> Path:
    """The project's alert rules, checked and unit-tested with promtool."""
    return paths.project_root() / "deploy" / "prometheus" / "alerts.yml"


def _loopback_address(address: str, what: str) -> str:
    host, _, port = address.rpartition(":")
    if host != LOOPBACK or not port.isdigit():
        raise ConfigError(
            f"{what} must be {LOOPBACK}:<port>, not {address!r}: the sandbox reaches loopback only"
        )
    return address


def _job(component: str, criticality: str, port: int, metrics_path: str) -> dict[str, Any]:
    return {
        "job_name": component,
        "metrics_path": metrics_path,
        "static_configs": [
            {
                "targets": [f"{LOOPBACK}:{port}"],
                "labels": {"component": component, "criticality": criticality},
            }
        ],
    }


def scrape_configs(
    inventory: Inventory,
    ports: Mapping[str, int],
    *,
    prometheus_port: int,
    alertmanager_port: int | None = None,
    traefik_metrics_port: int | None = None,
    traefik_metrics_path: str = "/metrics",
    evidence_address: str | None = None,
    evidence_path: str = "/metrics",
) -> list[dict[str, Any]]:
    """Prometheus `scrape_configs`: every service that has a port in `ports` (at its
    metrics_path), Traefik's metrics if their port is given (they are on an entrypoint of their
    own, not on the port the ports map has for Traefik), Prometheus itself, Alertmanager if
    given, and the evidence exporter at evidence_address ("127.0.0.1:port") if given.
    Criticality is the inventory's; a component it does not list counts as medium."""

    def criticality(name: str) -> str:
        component = inventory.components.get(name)
        return component.criticality if component else "medium"

    jobs = [
        _job(service.name, service.criticality, ports[service.name], service.metrics_path or "/metrics")
        for service in inventory.services()
        if service.name in ports
    ]
    if traefik_metrics_port is not None:
        jobs.append(_job("traefik", criticality("traefik"), traefik_metrics_port, traefik_metrics_path))
    jobs.append(_job("prometheus", criticality("prometheus"), prometheus_port, "/metrics"))
    if alertmanager_port is not None:
        jobs.append(_job("alertmanager", criticality("alertmanager"), alertmanager_port, "/metrics"))
    if evidence_address is not None:
        _, _, port = _loopback_address(evidence_address, "the evidence exporter's address").rpartition(":")
        jobs.append(_job(EVIDENCE_COMPONENT, EVIDENCE_CRITICALITY, int(port), evidence_path))
    return jobs


def prometheus_config(
    jobs: Sequence[dict[str, Any]],
    rule_files: Sequence[Path],
    alertmanager_port: int | None = None,
    interval: str = DEFAULT_INTERVAL,
) -> dict[str, Any]:
    """The whole prometheus.yml as a dict: the jobs, the rule files, where alerts go."""
    config: dict[str, Any] = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": list(jobs),
        "rule_files": [str(Path(p).resolve()) for p in rule_files],
    }
    if alertmanager_port is not None:
        config["alerting"] = {
            "alertmanagers": [{"static_configs": [{"targets": [f"{LOOPBACK}:{alertmanager_port}"]}]}]
        }
    return config


def _http_ready(url: str) -> bool:
    """Prometheus' and Alertmanager's own readiness endpoint answers 200."""
    with urllib.request.urlopen(f"{url}/-/ready", timeout=1.0) as response:
        return bool(response.status == 200)


def start_prometheus_for(
    root: Path,
    ports: Mapping[str, int] | None = None,
    *,
    inventory: Inventory | None = None,
    port: int | None = None,
    alertmanager_port: int | None = None,
    traefik_metrics_port: int | None = None,
    evidence_address: str | None = None,
    evidence_path: str = "/metrics",
    rule_files: Sequence[Path] | None = None,
    interval: str = DEFAULT_INTERVAL,
    timeout: float = 30.0,
) -> RealServer:
    """Prometheus scraping the platform (scrape_configs above) with the project's alert rules
    (rules_path() unless rule_files is given), sending alerts to Alertmanager on
    alertmanager_port. Ready at /-/ready; the first scrape follows ~5 s later (Prometheus applies
    discovered targets at most every 5 s), so a target's `up` is a later condition.
    RealServer.extra: url, config (the prometheus.yml path)."""
    binary = real_servers.system_binary("/usr/bin/prometheus", "prometheus")
    port = port or supervisor.free_port()
    data_dir = (root / "prometheus").resolve()
    (data_dir / "data").mkdir(parents=True, exist_ok=True)
    jobs = scrape_configs(
        inventory or load_inventory(),
        ports or {},
        prometheus_port=port,
        alertmanager_port=alertmanager_port,
        traefik_metrics_port=traefik_metrics_port,
        evidence_address=evidence_address,
        evidence_path=evidence_path,
    )
    rules = list(rule_files) if rule_files is not None else [rules_path()]
    config_path = data_dir / "prometheus.yml"
    # JSON is YAML, and json.dumps cannot produce anything Prometheus would read differently.
    config_path.write_text(json.dumps(prometheus_config(jobs, rules, alertmanager_port, interval), indent=1))
    url = f"http://{LOOPBACK}:{port}"
    command = [
        str(binary),
        f"--config.file={config_path}",
        f"--storage.tsdb.path={data_dir / 'data'}",
        f"--web.listen-address={LOOPBACK}:{port}",
        f"--web.external-url={url}",
        "--web.enable-lifecycle",
        "--storage.tsdb.retention.time=1d",
        # A firing alert is re-sent this often: short, so an Alertmanager (re)started after the
        # first evaluation still hears of it within seconds.
        "--rules.alert.resend-delay=2s",
    ]
    process = supervisor.start_ready(
        "prometheus", command, root, lambda: _http_ready(url), timeout, workdir=data_dir
    )
    return RealServer(
        "prometheus", [process], {"main": port}, data_dir, extra={"url": url, "config": config_path}
    )


def alertmanager_config(webhook_url: str | None, *more_webhooks: str) -> dict[str, Any]:
    """One route to one receiver: the webhooks if given (the sandbox's own, and the runbooks'
    alert receiver when `sandbox up --control` runs one), else a receiver with nowhere to send
    (`null` would parse as no receiver at all). Grouped per alert and environment, and waits of
    a second, so an alert reaches the webhook as soon as Prometheus sends it."""
    receiver: dict[str, Any] = {"name": "default"}
    urls = [u for u in (webhook_url, *more_webhooks) if u]
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname != LOOPBACK:
            raise ConfigError(
                f"the webhook must be http://{LOOPBACK}:<port>/...: the sandbox reaches loopback only"
            )
    if urls:
        receiver["webhook_configs"] = [{"url": url, "send_resolved": True} for url in urls]
    return {
        "route": {
            "receiver": "default",
            "group_by": ["alertname", "environment", "component"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [receiver],
    }


def start_alertmanager_for(
    root: Path,
    webhook_url: str | None = None,
    *,
    port: int | None = None,
    timeout: float = 30.0,
    more_webhooks: tuple[str, ...] = (),
) -> RealServer:
    """Alertmanager routing every alert to webhook_url (alertmanager_config). Clustering is off
    (`--cluster.listen-address=`: it would gossip on 0.0.0.0:9094). Ready at /-/ready.
    RealServer.extra: url, config (the alertmanager.yml path)."""
    binary = real_servers.system_binary("/usr/bin/prometheus-alertmanager", "prometheus-alertmanager")
    port = port or supervisor.free_port()
    data_dir = (root / "alertmanager").resolve()
    (data_dir / "data").mkdir(parents=True, exist_ok=True)
    config_path = data_dir / "alertmanager.yml"
    config_path.write_text(json.dumps(alertmanager_config(webhook_url, *more_webhooks), indent=1))
    url = f"http://{LOOPBACK}:{port}"
    command = [
        str(binary),
        f"--config.file={config_path}",
        f"--storage.path={data_dir / 'data'}",
        f"--web.listen-address={LOOPBACK}:{port}",
        f"--web.external-url={url}",
        "--cluster.listen-address=",
    ]
    process = supervisor.start_ready(
        "alertmanager", command, root, lambda: _http_ready(url), timeout, workdir=data_dir
    )
    return RealServer(
        "alertmanager", [process], {"main": port}, data_dir, extra={"url": url, "config": config_path}
    )


def route_alerts_also_to(root: Path, alertmanager_url: str, webhook_url: str, more_webhook: str) -> None:
    """Rewrite the running Alertmanager's file to send to one more webhook, and reload it."""
    config_path = (root / "alertmanager" / "alertmanager.yml").resolve()
    config_path.write_text(json.dumps(alertmanager_config(webhook_url, more_webhook), indent=1))
    answer = urllib.request.urlopen(
        urllib.request.Request(f"{alertmanager_url}/-/reload", method="POST"), timeout=10
    )
    if answer.status != 200:
        raise ConfigError(f"Alertmanager did not reload its configuration ({answer.status})")
