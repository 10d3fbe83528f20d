"""Alertmanager's webhook (payload version 4) turned into submitted runs: `vextrus-nb
alert-receiver`. Routes come from parameters/alert-routes.yaml. One run per firing: the
workflow id is the alert's fingerprint and start time, so a re-sent notification finds the run
already started and starts nothing. The receiver answers at once; the run goes on on a worker.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vextrus_nb import paths
from vextrus_nb.errors import ConfigError, RunRefused

ROUTES_FILE = "alert-routes.yaml"


class Route(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    match: dict[str, str]
    runbook: str
    env: str | None = None
    env_label: str | None = None
    parameters: dict[str, Any] = {}


class Routes(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    routes: Annotated[list[Route], Field(min_length=1)]


def load_routes(path: Path | None = None) -> Routes:
    path = path or paths.parameters_dir() / ROUTES_FILE
    try:
        return Routes.model_validate(yaml.safe_load(path.read_text()) or {})
    except OSError as exc:
        raise ConfigError(f"alert routes {path}: cannot read ({exc.strerror})") from None
    except (yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"alert routes {path}: {exc}") from None


class Alert(BaseModel):
    """One alert of Alertmanager's webhook payload (the fields a route and the record use)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    status: str
    labels: dict[str, str]
    annotations: dict[str, str] = {}
    startsAt: str
    fingerprint: str


class Notification(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    version: str
    status: str
    alerts: list[Alert]


def parse(body: bytes) -> Notification:
    """The webhook payload, or ValueError saying what is wrong with it (the receiver's 400)."""
    try:
        notification = Notification.model_validate(json.loads(body))
    except (json.JSONDecodeError, ValidationError, UnicodeDecodeError) as exc:
        raise ValueError(f"not an Alertmanager webhook payload: {str(exc).splitlines()[0]}") from None
    if notification.version != "4":
        raise ValueError(f"payload version {notification.version!r}: only version 4 is understood")
    return notification


@dataclass(frozen=True)
class Routed:
    alert: Alert
    route: Route
    env: str
    parameters: dict[str, Any]

    @property
    def workflow_id(self) -> str:
        """One per firing: the fingerprint and when it started firing (a new firing of the same
        alert after it resolved is a new run)."""
        started = re.sub(r"[^0-9A-Za-z]", "", self.alert.startsAt)[:20]
        return f"alert-{self.alert.fingerprint}-{started}"

    def record(self) -> dict[str, Any]:
        return {
            "name": self.alert.labels.get("alertname", ""),
            "labels": self.alert.labels,
            "fingerprint": self.alert.fingerprint,
            "starts_at": self.alert.startsAt,
        }


def route(alert: Alert, routes: Routes) -> Routed | None:
    for candidate in routes.routes:
        if all(alert.labels.get(k) == v for k, v in candidate.match.items()):
            env = alert.labels.get(candidate.env_label, "") if candidate.env_label else candidate.env
            if not env:
                raise RunRefused(
                    f"route for {candidate.match}: the alert has no label {candidate.env_label!r}"
                )
            parameters = {
                key: value.format_map(alert.labels) if isinstance(value, str) else value
                for key, value in candidate.parameters.items()
            }
            return Routed(alert, candidate, env, parameters)
    return None
