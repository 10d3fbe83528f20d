"""resilience/load with the real k6: against a trivial loopback server of this module (the
engine: percentiles recomputed from the time series agree with k6's, a wrong password is caught
by the login's thresholds, a plan off loopback or over a ceiling is refused before k6 starts)
and against the session sandbox (the runbook passes and records its percentiles, a second run
takes the first as its baseline, a slow gateway fails on the p95 threshold and as a regression,
naming the endpoint)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import nbformat
import pytest

from vextrus_nb.credentials import LOAD_USER, LOAD_USER_SECRET
from vextrus_nb.errors import LoadError, LoadPlanRefused
from vextrus_nb.resilience import k6
from vextrus_nb.resilience.baseline import compare
from vextrus_nb.resilience.results import PERCENTILES, read_result
from vextrus_nb.sandbox import manager
from vextrus_nb.sandbox_state import SandboxState

from .helpers import ledger_entries, run_cli

PASSWORD = "load-user-password-71"  # what the trivial server's login accepts
TOKEN = "token-of-the-load-user"
SHORT = {"duration_s": 2, "rate": 10, "pre_allocated_vus": 4, "max_vus": 20}


class _Platform(BaseHTTPRequestHandler):
    """The three routes the load plan calls: GraphQL, a login checking the password, a profile."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body leave together: no delayed-ACK stall

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if self.path == "/graphql":
            self._answer(200, {"data": {"_gateway": {"subgraphs": []}}})
        elif self.path == "/auth/login" and body.get("password") == PASSWORD:
            self._answer(200, {"access_token": TOKEN})
        else:
            self._answer(401, {"statusCode": 401, "message": "Unauthorized"})

    def do_GET(self) -> None:
        authorised = self.path == "/auth/profile" and self.headers.get("Authorization") == f"Bearer {TOKEN}"
        self._answer(200 if authorised else 401, {"email": "load@vextrus.local"})

    def _answer(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def platform_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Platform)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _plan(url: str, password_var: str | None = "LOAD_PASSWORD", **arrival: int) -> k6.LoadPlan:
    return k6.LoadPlan(
        targets=(
            k6.GraphqlQuery(f"{url}/graphql"),
            k6.LoginProfile(f"{url}/auth/login", f"{url}/auth/profile", "load@vextrus.local", password_var),
        ),
        arrival=k6.Arrival(**{**SHORT, **arrival}),
        loopback_only=True,
    )


# -- the engine, against the trivial server ---------------------------------------------------


def test_k6_and_its_time_series_agree_on_every_percentile(platform_url: str, tmp_path: Path) -> None:
    plan = _plan(platform_url)
    run = k6.run_k6(plan, tmp_path, {"LOAD_PASSWORD": PASSWORD})
    result = read_result(plan, run)
    assert run.exit_code == 0 and not result.crossed
    assert [e.endpoint for e in result.endpoints] == ["graphql", "auth-login", "auth-profile"]
    for figures in result.endpoints:
        assert figures.requests > 0 and figures.failed_requests == 0 and figures.failed_checks == 0
        assert figures.agree, (figures.k6_ms, figures.ours_ms)
        assert all(figures.k6_ms[p] > 0 for p in PERCENTILES)
    # The password went to k6 through its environment only: not in the script, and the login took it.
    assert PASSWORD not in run.script.read_text()
    assert result.endpoint("auth-profile").requests == result.endpoint("auth-login").requests
    assert {row["endpoint"] for row in result.per_second()} == {"graphql", "auth-login", "auth-profile"}


def test_a_wrong_password_crosses_the_logins_thresholds_naming_it(platform_url: str, tmp_path: Path) -> None:
    plan = _plan(platform_url)
    run = k6.run_k6(plan, tmp_path, {"LOAD_PASSWORD": "not-the-password"})
    result = read_result(plan, run)
    assert run.exit_code == k6.EXIT_THRESHOLDS_CROSSED
    assert "auth-login" in result.crossed and "graphql" not in result.crossed
    assert "http_req_failed rate<0.01" in result.crossed["auth-login"]
    assert result.endpoint("auth-login").failed_checks == result.endpoint("auth-login").requests


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"url": "http://10.1.2.3:4000"}, "10.1.2.3 is not loopback"),
        ({"url": "http://vextrus.example:4000"}, "vextrus.example is not loopback"),
        ({"url": "ftp://127.0.0.1:21"}, "is not an http(s) URL"),
        ({"rate": k6.MAX_RATE_PER_S + 1}, f"rate must be 1..{k6.MAX_RATE_PER_S}"),
        ({"duration_s": k6.MAX_DURATION_S + 1}, f"duration_s must be 1..{k6.MAX_DURATION_S}"),
        ({"max_vus": 1}, "max_vus must be pre_allocated_vus.."),
    ],
)
def test_a_plan_off_loopback_or_over_a_ceiling_is_refused_before_k6_starts(
    tmp_path: Path, change: dict[str, object], says: str
) -> None:
    url = str(change.pop("url", "http://127.0.0.1:9"))
    plan = _plan(url, **change)  # type: ignore[arg-type]
    # No k6 binary at all: a refusal can only come from the check that runs before it.
    with pytest.raises(LoadPlanRefused, match=says.replace("(", r"\(").replace(")", r"\)")):
        k6.run_k6(plan, tmp_path, binary=tmp_path / "no-k6-here")
    assert not (tmp_path / k6.SCRIPT_NAME).exists()


def test_k6_failing_is_an_error_naming_its_exit_code_never_the_password(tmp_path: Path) -> None:
    fake = tmp_path / "k6-that-fails"
    fake.write_text('#!/bin/sh\necho "could not log in with $LOAD_PASSWORD" >&2\nexit 107\n')
    fake.chmod(0o755)
    with pytest.raises(LoadError) as raised:
        k6.run_k6(_plan("http://127.0.0.1:9"), tmp_path / "work", {"LOAD_PASSWORD": PASSWORD}, binary=fake)
    assert "k6 exited 107" in str(raised.value) and "could not log in with ***" in str(raised.value)
    assert PASSWORD not in str(raised.value)


def test_a_regression_needs_both_the_margin_and_the_noise_floor() -> None:
    baseline = {
        "run_id": "base",
        "summary": {"endpoints": {"graphql": {"p95_ms": 10.0}, "auth": {"p95_ms": 100}}},
    }
    comparison = compare({"graphql": 30.0, "auth": 160.0, "new": 5.0}, baseline, margin=0.2, floor_ms=25.0)
    # graphql tripled but grew 20 ms, under the floor; auth grew 60 %, beyond both.
    assert [c.endpoint for c in comparison.regressions] == ["auth"]
    assert {c.endpoint for c in comparison.changes} == {"graphql", "auth"}
    assert compare({"graphql": 30.0}, None, 0.2, 25.0).baseline_run_id is None


# -- the runbook, on the session sandbox --------------------------------------------------------


def _run_load(outputs: Path, *parameters: str) -> tuple[int, dict[str, object], str]:
    values = {**SHORT, "dry_run": False}
    args = [f"{k}={v}" for k, v in values.items()] + list(parameters)
    done = run_cli(
        "run",
        "resilience/load",
        "--env",
        "sandbox",
        *[a for p in args for a in ("-p", p)],
        env={"VEXTRUS_OUTPUTS_DIR": str(outputs)},
    )
    entry = ledger_entries(outputs)[-1]
    return done.returncode, entry, done.stderr


@pytest.fixture(scope="module")
def load_outputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("load-outputs")


def test_the_sandbox_auth_logs_the_load_user_in_and_serves_its_profile(sandbox: SandboxState) -> None:
    """The routes the load test's login step calls: the right password gets a token the profile
    accepts; a wrong one, an unknown user, a missing token or a forged one is 401."""
    auth = f"http://127.0.0.1:{sandbox.ports['auth']}"
    password = sandbox.secret(LOAD_USER_SECRET)
    login = httpx.post(f"{auth}/auth/login", json={"email": LOAD_USER, "password": password}, timeout=10)
    assert login.status_code == 200
    token = login.json()["access_token"]
    profile = httpx.get(f"{auth}/auth/profile", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert profile.status_code == 200 and profile.json()["email"] == LOAD_USER
    for email, wrong in ((LOAD_USER, password + "x"), ("someone@vextrus.local", password)):
        refused = httpx.post(f"{auth}/auth/login", json={"email": email, "password": wrong}, timeout=10)
        assert refused.status_code == 401 and password not in refused.text
    assert httpx.post(f"{auth}/auth/login", json={"email": LOAD_USER}, timeout=10).status_code == 400
    for header in ({}, {"Authorization": f"Bearer {token[:-4]}AAAA"}):
        assert httpx.get(f"{auth}/auth/profile", headers=header, timeout=10).status_code == 401


@pytest.fixture(scope="module")
def first_run(sandbox: SandboxState, load_outputs: Path) -> dict[str, object]:
    code, entry, stderr = _run_load(load_outputs)
    assert code == 0, stderr
    return entry


def test_the_load_runbook_passes_on_the_sandbox_and_records_its_percentiles(
    first_run: dict[str, object], load_outputs: Path
) -> None:
    summary = first_run["summary"]
    assert first_run["status"] == "passed" and summary["baseline_run_id"] is None
    assert set(summary["endpoints"]) == {"graphql", "auth-login", "auth-profile"}
    for figures in summary["endpoints"].values():
        assert 0 < figures["p50_ms"] <= figures["p90_ms"] <= figures["p95_ms"] <= figures["p99_ms"]
        assert figures["requests"] > 0 and figures["failed_requests"] == 0
        assert abs(figures["p95_ms"] - figures["our_p95_ms"]) <= 0.002  # both rounded to 3 places
    # Dropped iterations are recorded, not judged: a stalled machine may drop one while VUs start.
    assert summary["percentiles_agree"] is True and isinstance(summary["dropped_iterations"], int)
    metrics = (load_outputs / "metrics" / "vextrus_load_sandbox.prom").read_text()
    assert 'vextrus_load_p95_seconds{endpoint="graphql",env="sandbox"}' in metrics
    notebook = nbformat.read(load_outputs / first_run["output"], as_version=4)
    assert "constant-arrival-rate" in json.dumps([c.get("outputs") for c in notebook.cells])


def test_a_second_run_compares_against_the_first_as_its_baseline(
    first_run: dict[str, object], load_outputs: Path
) -> None:
    # A generous noise floor: this run must pass on a machine busy with other tests.
    code, entry, stderr = _run_load(load_outputs, "regression_floor_ms=200")
    assert code == 0, stderr
    assert entry["summary"]["baseline_run_id"] == first_run["run_id"]
    assert entry["summary"]["regressions"] == []


def test_a_slow_gateway_fails_on_the_p95_threshold_and_as_a_regression_naming_it(
    healthy: SandboxState, first_run: dict[str, object], load_outputs: Path
) -> None:
    manager.fault("api-gateway", "slow", root=healthy.root, delay_s=0.5)
    try:
        code, entry, stderr = _run_load(load_outputs, "targets=graphql")
    finally:
        manager.heal(root=healthy.root)
    assert code == 1, stderr
    failures = entry["failures"]
    assert any(f.startswith("k6 threshold crossed on graphql: http_req_duration p(95)<300") for f in failures)
    assert any(f.startswith("p95 regression on graphql:") for f in failures), failures
    assert entry["summary"]["endpoints"]["graphql"]["p95_ms"] >= 500
    assert entry["summary"]["thresholds_crossed"] == ["graphql"]


@pytest.mark.parametrize(
    ("parameters", "says"),
    [
        (["gateway_url=http://10.0.0.8:4000/graphql"], "gateway_url: 10.0.0.8 is not loopback"),
        ([f"rate={k6.MAX_RATE_PER_S + 1}"], f"rate must be 1..{k6.MAX_RATE_PER_S}"),
        (["targets=graphql,payroll"], "targets must name some of graphql, auth"),
        (["p95_ms=fast"], "p95_ms"),
    ],
)
def test_bad_parameters_are_refused_before_a_kernel(
    sandbox: SandboxState, tmp_path: Path, parameters: list[str], says: str
) -> None:
    outputs = tmp_path / "outputs"
    done = run_cli(
        "run",
        "resilience/load",
        "--env",
        "sandbox",
        "-p",
        "dry_run=False",
        *[a for p in parameters for a in ("-p", p)],
        env={"VEXTRUS_OUTPUTS_DIR": str(outputs)},
    )
    assert done.returncode == 2, done.stderr
    assert says in done.stderr
    assert ledger_entries(outputs) == [] and not list(outputs.rglob("*.ipynb"))


def test_a_live_load_in_production_needs_confirm(tmp_path: Path) -> None:
    outputs = tmp_path / "outputs"
    done = run_cli(
        "run",
        "resilience/load",
        "--env",
        "production",
        "-p",
        "dry_run=False",
        env={"VEXTRUS_OUTPUTS_DIR": str(outputs)},
    )
    assert done.returncode == 2 and "pass -p confirm=production to proceed" in done.stderr
    assert not list(outputs.rglob("*.ipynb"))
