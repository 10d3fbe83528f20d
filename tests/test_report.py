"""The auditor's view: a report opened in a real headless Chromium from file://
with the network blocked, the ledger banner turning red on tampering, signed
ledgers, and the export for auditors' own tools."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from vextrus_nb.evidence import declared, ledger, metrics, report, signing
from vextrus_nb.sandbox import manager
from vextrus_nb.sandbox_state import SandboxState

from .helpers import run_cli

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def demo_outputs(sandbox: SandboxState, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A demo's worth of runs: two passing smoke runs and one failing (finance down)."""
    outputs = tmp_path_factory.mktemp("demo-outputs")
    env = {"VEXTRUS_OUTPUTS_DIR": str(outputs)}
    assert run_cli("run", "verify/smoke", "--env", "sandbox", env=env).returncode == 0
    manager.fault("finance", "down", root=sandbox.root)
    try:
        assert run_cli("run", "verify/smoke", "--env", "sandbox", env=env).returncode == 1
    finally:
        manager.heal(root=sandbox.root)
    assert run_cli("run", "verify/smoke", "--env", "sandbox", env=env).returncode == 0
    yield outputs


@pytest.fixture
def outputs_copy(demo_outputs: Path, tmp_path: Path) -> Path:
    """A copy to tamper with."""
    copy = tmp_path / "outputs"
    shutil.copytree(demo_outputs, copy)
    return copy


@pytest.mark.servers
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is installed by .ci/run and make system-deps")
def test_report_opens_offline_in_chromium(demo_outputs: Path, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    built = report.build(tmp_path / "report", outputs_dir=demo_outputs)
    assert built.runs == 3 and built.rendered == 3 and built.verdict.ok
    console_errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.route(
            "**/*",
            lambda route: route.continue_() if route.request.url.startswith("file://") else route.abort(),
        )
        page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: console_errors.append(str(exc)))
        page.goto(built.index.as_uri())
        assert page.locator("tr.run").count() == 3
        assert "ledger intact: 3 entries" in page.locator("#ledger-banner").inner_text()
        failed = page.locator('tr.run[data-status="failed"]')
        assert failed.count() == 1 and "critical_down=1" in failed.inner_text()
        assert "RunbookFailed: critical component(s) down: finance" in failed.locator(".cause").inner_text()
        assert page.locator("tr.run .tag-headless").count() == 3
        assert page.locator(".chart .js-plotly-plot").count() >= 1, "runs-per-day chart did not render"
        page.select_option("#filter-status", "failed")
        assert page.locator("tr.run:visible").count() == 1
        page.screenshot(path=str(tmp_path / "index.png"), full_page=True)
        failed.locator("a").click()
        page.wait_for_load_state()
        text = page.inner_text("body")
        assert "Run record" in text and "FAILED" in text and "finance" in text
        assert page.locator(".js-plotly-plot").count() == 1, "the notebook's figure did not render"
        page.screenshot(path=str(tmp_path / "failed-run.png"), full_page=True)
        browser.close()
    assert console_errors == []
    assert (tmp_path / "index.png").stat().st_size > 10_000


def test_editing_one_byte_of_a_notebook_turns_the_banner_red(outputs_copy: Path, tmp_path: Path) -> None:
    second = ledger.read_entries(outputs_copy)[1]
    notebook = outputs_copy / second["output"]
    data = bytearray(notebook.read_bytes())
    data[100] ^= 0x20
    notebook.write_bytes(bytes(data))
    built = report.build(tmp_path / "report", outputs_dir=outputs_copy)
    page = built.index.read_text()
    assert not built.verdict.ok and 'class="banner broken"' in page
    assert f"line 2 (run {second['run_id']})" in page and "modified after the run" in page


def test_editing_one_byte_of_the_ledger_turns_the_banner_red(outputs_copy: Path, tmp_path: Path) -> None:
    ledger = outputs_copy / "ledger.jsonl"
    lines = ledger.read_text().splitlines()
    lines[2] = lines[2].replace('"operator": "', '"operator": "X', 1)
    ledger.write_text("\n".join(lines) + "\n")
    built = report.build(tmp_path / "report", outputs_dir=outputs_copy)
    assert not built.verdict.ok and built.verdict.broken_line == 3
    assert "ledger broken at line 3" in built.index.read_text()
    result = run_cli(
        "report", "--out", str(tmp_path / "cli-report"), env={"VEXTRUS_OUTPUTS_DIR": str(outputs_copy)}
    )
    assert result.returncode == 1 and result.stdout.strip().endswith("index.html")


def test_report_filters_by_environment_and_date(demo_outputs: Path, tmp_path: Path) -> None:
    from datetime import date, timedelta

    assert report.build(tmp_path / "a", env="production", outputs_dir=demo_outputs).runs == 0
    assert (
        report.build(tmp_path / "b", since=date.today() + timedelta(days=1), outputs_dir=demo_outputs).runs
        == 0
    )
    assert report.build(tmp_path / "c", env="sandbox", outputs_dir=demo_outputs).runs == 3


def test_signed_ledger_verifies_only_with_the_right_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    right, wrong = tmp_path / "right.pem", tmp_path / "wrong.pem"
    signing.generate(right)
    signing.generate(wrong)
    outputs = tmp_path / "outputs"
    monkeypatch.setenv(signing.SIGNING_KEY_VAR, str(right))
    for i in range(3):
        entry = ledger.append_entry({"run_id": f"r{i}", "status": "passed"}, outputs)
        assert entry["signature"] and entry["signer"]
    verdict = ledger.verify_ledger(outputs)
    assert verdict.ok and verdict.signed_with
    wrong_public = tmp_path / "wrong.pub"
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(wrong.read_bytes(), password=None)
    wrong_public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    monkeypatch.delenv(signing.SIGNING_KEY_VAR)
    monkeypatch.setenv(signing.VERIFY_KEY_VAR, str(wrong_public))
    verdict = ledger.verify_ledger(outputs)
    assert not verdict.ok and verdict.broken_line == 1 and "signature does not verify" in verdict.reason


def test_unsigned_entry_after_signed_ones_is_a_downgrade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = tmp_path / "key.pem"
    signing.generate(key)
    monkeypatch.setenv(signing.SIGNING_KEY_VAR, str(key))
    ledger.append_entry({"run_id": "signed"}, tmp_path)
    monkeypatch.delenv(signing.SIGNING_KEY_VAR)
    ledger.append_entry({"run_id": "unsigned"}, tmp_path)
    monkeypatch.setenv(signing.SIGNING_KEY_VAR, str(key))
    verdict = ledger.verify_ledger(tmp_path)
    assert (
        not verdict.ok and verdict.broken_run_id == "unsigned" and "unsigned after signed" in verdict.reason
    )


def test_ledger_export_csv_and_json(demo_outputs: Path) -> None:
    env = {"VEXTRUS_OUTPUTS_DIR": str(demo_outputs)}
    as_json = run_cli("ledger", "export", "--format", "json", env=env)
    assert as_json.returncode == 0
    assert json.loads(as_json.stdout) == ledger.read_entries(demo_outputs)
    as_csv = run_cli("ledger", "export", "--format", "csv", env=env)
    header, *rows = as_csv.stdout.splitlines()
    assert as_csv.returncode == 0 and len(rows) == 3
    assert "summary.critical_down" in header.split(",") and "run_id" in header.split(",")
    assert run_cli("ledger", "export", "--format", "xml", env=env).returncode == 2


def test_keygen_refuses_to_overwrite(tmp_path: Path) -> None:
    key = tmp_path / "k.pem"
    assert run_cli("ledger", "keygen", str(key)).returncode == 0
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    again = run_cli("ledger", "keygen", str(key))
    assert again.returncode == 2 and "refusing to overwrite" in again.stderr
    assert os.environ.get(signing.SIGNING_KEY_VAR) is None


# -- the index from a hand-made ledger: tags, causes, order, key figures --------------------------


def _sealed_notebook(outputs: Path, run_id: str, text: str) -> dict[str, str]:
    """A small executed-looking notebook, as the ledger entry that seals it refers to it."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    cell = new_code_cell("print(result)", outputs=[new_output("stream", name="stdout", text=text + "\n")])
    nb = new_notebook(cells=[new_markdown_cell(f"# run {run_id}"), cell])
    path = outputs / "sandbox" / "2026-11-05" / f"{run_id}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return {"output": str(path.relative_to(outputs)), "output_sha256": ledger.sha256_file(path)}


def _entry(outputs: Path, run_id: str, started_at: str, status: str, **fields: object) -> None:
    sealed = {} if status == "abandoned" else _sealed_notebook(outputs, run_id, f"{run_id} {status}")
    record = {
        "run_id": run_id,
        "runbook": "dr/restore",
        "env": "sandbox",
        "operator": "alice",
        "status": status,
        "started_at": started_at,
        "summary": {},
        "failures": [],
        "cause": "",
        "output": None,
        "output_sha256": None,
        **sealed,
        **fields,
    }
    ledger.append_entry(record, outputs)


@pytest.fixture(scope="module")
def mixed_report(tmp_path_factory: pytest.TempPathFactory) -> report.Report:
    """Runs of every kind, appended to the ledger out of start-time order."""
    outputs = tmp_path_factory.mktemp("mixed-outputs")
    _entry(
        outputs,
        "r-error",
        "2026-11-04T10:00:00+00:00",
        "error",
        cause="DeadKernelError: Kernel died before replying to execute request",
        parameters={"dry_run": False, "services": ""},
        executed_by="vextrus-nb run",
    )
    _entry(
        outputs,
        "r-checklist",
        "2026-11-01T08:00:00+00:00",
        "passed",
        runbook="verify/checklist",
        parameters={"threshold": 80.0},
        executed_by="vextrus-nb run",
        summary={
            "by_category": {"security": 90.0, "backups": 85.0},
            "score": 87.5,
            "threshold": 80.0,
            "failed_checks": ["SEC-3", "OBS-1"],
            "checks": 40,
            "passed": 38,
            "note": "x" * 200,
            "checklist_seconds": 12.34,
        },
    )
    _entry(
        outputs,
        "r-abandoned",
        "2026-11-05T07:30:00+00:00",
        "abandoned",
        cause="the kernel went away before the run finished",
        parameters={"dry_run": False, "services": ""},
        executed_by="vextrus-nb open",
    )
    _entry(
        outputs,
        "r-dry",
        "2026-11-03T09:00:00+00:00",
        "passed",
        runbook="dr/drill",  # declares rto_s and databases among its key figures
        parameters={"dry_run": True, "services": "finance"},
        executed_by="vextrus-nb open",
        summary={"restored": ["finance"], "databases": 1, "rto_s": 4.21},
    )
    _entry(
        outputs,
        "r-legacy",
        "2026-11-02T12:00:00+00:00",
        "failed",
        runbook="verify/smoke",
        parameters={"timeout_s": 2},
        cause="RunbookFailed: critical component(s) down: finance",
        failures=["critical component(s) down: finance"],
        summary={"components": 32, "up": 31, "down": 1, "critical_down": ["finance"]},
    )
    return report.build(tmp_path_factory.mktemp("mixed-report"), outputs_dir=outputs, workers=1)


def _rows(built: report.Report) -> dict[str, object]:
    from bs4 import BeautifulSoup

    page = BeautifulSoup(built.index.read_text(encoding="utf-8"), "html.parser")
    return {row["data-run-id"]: row for row in page.select("tr.run")}


def test_index_rows_are_newest_first_whatever_the_ledger_order(mixed_report: report.Report) -> None:
    assert mixed_report.verdict.ok and mixed_report.runs == 5 and mixed_report.rendered == 4
    assert list(_rows(mixed_report)) == ["r-abandoned", "r-error", "r-dry", "r-legacy", "r-checklist"]


def test_only_dry_runs_carry_the_dry_run_tag(mixed_report: report.Report) -> None:
    rows = _rows(mixed_report)
    tagged = [run_id for run_id, row in rows.items() if row.select(".tag-dry-run")]
    assert tagged == ["r-dry"]
    assert "dry run" in rows["r-dry"].get_text()
    modes = {run_id: row["data-mode"] for run_id, row in rows.items()}
    # No dry_run parameter recorded (an older entry, a runbook without one): unknown, not dry.
    assert modes == {
        "r-abandoned": "live",
        "r-error": "live",
        "r-dry": "dry run",
        "r-legacy": "unknown",
        "r-checklist": "unknown",
    }
    assert "dry run" not in " ".join(rows[r].get_text() for r in rows if r != "r-dry")


def test_a_run_that_did_not_pass_shows_its_cause(mixed_report: report.Report) -> None:
    rows = _rows(mixed_report)
    cause = {run_id: row.select_one(".cause") for run_id, row in rows.items()}
    assert cause["r-legacy"].get_text() == "RunbookFailed: critical component(s) down: finance"
    assert cause["r-error"].get_text().startswith("DeadKernelError: Kernel died")
    assert cause["r-dry"] is None and cause["r-checklist"] is None


def test_key_figures_are_a_few_scalars_never_a_dump(mixed_report: report.Report) -> None:
    rows = _rows(mixed_report)
    figures = {run_id: row.select_one("td.figures").get_text() for run_id, row in rows.items()}
    for text in figures.values():
        assert not any(mark in text for mark in "{}[]'"), text
        assert text.count("=") <= report.MAX_FIGURES
    checklist = figures["r-checklist"]
    assert checklist.startswith("score=87.5, failed_checks=2")
    assert "by_category" not in checklist and "security" not in checklist and "xxxx" not in checklist
    assert figures["r-dry"] == "rto_s=4.21, databases=1"
    assert figures["r-legacy"].startswith("critical_down=1, down=1, up=31")


def test_interactive_and_abandoned_runs_are_listed(mixed_report: report.Report) -> None:
    rows = _rows(mixed_report)
    vias = {run_id: row["data-via"] for run_id, row in rows.items()}
    assert vias == {
        "r-abandoned": "interactive",
        "r-error": "headless",
        "r-dry": "interactive",
        "r-legacy": "",
        "r-checklist": "headless",
    }
    abandoned = rows["r-abandoned"]
    assert abandoned["data-status"] == "abandoned" and abandoned.select("a") == []
    assert "no notebook" in abandoned.get_text()
    assert "kernel went away" in abandoned.select_one(".cause").get_text()
    assert all(rows[r].select("a") for r in rows if r != "r-abandoned")


def test_key_figures_of_odd_summaries() -> None:
    assert report.key_figures(None) == []
    assert report.key_figures({"nested": {"a": 1}, "items": [1, 2], "long": "y" * 80}) == []
    assert report.key_figures({"ok": True, "n": 3, "ratio": 0.333333}) == [
        ("ok", "yes"),
        ("n", "3"),
        ("ratio", "0.33"),
    ]
    assert len(report.key_figures({f"k{i}": i for i in range(20)})) == report.MAX_FIGURES


@pytest.mark.servers
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is installed by .ci/run and make system-deps")
def test_index_filters_dry_runs_and_interactive_runs_in_chromium(mixed_report: report.Report) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(mixed_report.index.as_uri())
        page.select_option("#filter-mode", "dry run")
        assert page.locator("tr.run:visible").count() == 1
        assert page.locator("tr.run:visible").get_attribute("data-run-id") == "r-dry"
        page.select_option("#filter-mode", "")
        page.select_option("#filter-via", "interactive")
        visible = page.locator("tr.run:visible")
        assert sorted(visible.nth(i).get_attribute("data-run-id") for i in range(visible.count())) == [
            "r-abandoned",
            "r-dry",
        ]
        browser.close()


def test_live_runs_carry_a_live_tag_and_read_only_runbooks_no_mode_tag(mixed_report: report.Report) -> None:
    rows = _rows(mixed_report)
    assert sorted(r for r, row in rows.items() if row.select(".tag-live")) == ["r-abandoned", "r-error"]
    # A runbook that changes nothing is read-only whatever its dry_run parameter says.
    assert report.run_mode({"destructive": False, "parameters": {"dry_run": True}}) == "read-only"
    assert report.run_mode({"destructive": False, "parameters": {"dry_run": False}}) == "read-only"
    assert report.run_mode({"destructive": True, "parameters": {"dry_run": False}}) == "live"
    assert report.run_mode({"destructive": True, "parameters": {"dry_run": True}}) == "dry run"
    wrote = {"summary": {"writes": ["backup set 20261201T150000Z"]}}
    assert report.run_mode({"destructive": True, "parameters": {"dry_run": True}, **wrote}) == "wrote"
    assert report.run_mode({"destructive": False, "parameters": {"dry_run": True}, **wrote}) == "wrote"
    assert report.run_mode({"destructive": True, "parameters": {"dry_run": False}, **wrote}) == "live"


def test_the_load_p95_chart_per_environment_draws_only_sealed_load_runs(tmp_path: Path) -> None:
    outputs = tmp_path / "outputs"

    def load_run(
        run_id: str, env: str, started_at: str, p95: dict[str, float], status: str = "passed"
    ) -> None:
        endpoints = {name: {"p95_ms": value, "requests": 20} for name, value in p95.items()}
        _entry(
            outputs,
            run_id,
            started_at,
            status,
            runbook="resilience/load",
            env=env,
            parameters={"dry_run": not p95},
            summary={"p95_ms": max(p95.values(), default=0.0), "endpoints": endpoints} if p95 else {},
        )

    load_run("l-first", "sandbox", "2026-11-01T10:00:00+00:00", {"graphql": 12.5, "auth-login": 4.0})
    load_run("l-slow", "sandbox", "2026-11-02T10:00:00+00:00", {"graphql": 527.6}, status="failed")
    load_run("l-staging", "staging", "2026-11-02T11:00:00+00:00", {"graphql": 40.0})
    load_run("l-dry", "sandbox", "2026-11-03T10:00:00+00:00", {})
    load_run("l-edited", "sandbox", "2026-11-04T10:00:00+00:00", {"graphql": 9.0})
    edited = outputs / ledger.read_entries(outputs)[-1]["output"]
    edited.write_text(edited.read_text().replace("l-edited passed", "l-edited PASSED"))

    [trend] = declared.discover()["resilience/load"].trends
    series = report.trend_series("resilience/load", trend, ledger.read_entries(outputs), outputs)
    assert list(series) == ["sandbox", "staging"]
    assert [(r["run_id"], r["line"], r["value"]) for r in series["sandbox"]] == [
        ("l-first", "auth-login", 4.0),  # the ledger stores its keys sorted
        ("l-first", "graphql", 12.5),
        ("l-slow", "graphql", 527.6),
    ]  # the dry run measured nothing; the edited notebook is no longer evidence
    built = report.build(tmp_path / "report", outputs_dir=outputs, workers=1)
    from bs4 import BeautifulSoup

    page = BeautifulSoup(built.index.read_text(encoding="utf-8"), "html.parser")
    charts = {c["data-chart"]: c for c in page.select(".chart")}
    assert {"resilience/load:sandbox", "resilience/load:staging"} <= set(charts)
    assert "Load p95 per endpoint (ms): sandbox" in str(charts["resilience/load:sandbox"])
    only_sandbox = report.build(tmp_path / "report-sandbox", env="sandbox", outputs_dir=outputs, workers=1)
    names = {
        c["data-chart"] for c in BeautifulSoup(only_sandbox.index.read_text(), "html.parser").select(".chart")
    }
    assert "resilience/load:sandbox" in names and "resilience/load:staging" not in names


def test_the_recovery_time_chart_per_environment_draws_only_sealed_live_chaos_runs(tmp_path: Path) -> None:
    outputs = tmp_path / "outputs"

    def chaos_run(
        run_id: str, env: str, started_at: str, seconds: float | None, status: str = "passed"
    ) -> None:
        summary = {"experiment": "kill-random-service", "resilience_score": 100.0}
        if seconds is not None:
            summary["time_to_recover_s"] = seconds
        _entry(
            outputs,
            run_id,
            started_at,
            status,
            runbook="resilience/chaos",
            env=env,
            parameters={"dry_run": seconds is None},
            summary=summary,
        )

    chaos_run("c-first", "sandbox", "2026-11-01T10:00:00+00:00", 0.4)
    chaos_run("c-slow", "sandbox", "2026-11-02T10:00:00+00:00", 12.5, status="failed")
    chaos_run("c-staging", "staging", "2026-11-02T11:00:00+00:00", 3.0)
    chaos_run("c-dry", "sandbox", "2026-11-03T10:00:00+00:00", None)
    chaos_run("c-edited", "sandbox", "2026-11-04T10:00:00+00:00", 0.1)
    edited = outputs / ledger.read_entries(outputs)[-1]["output"]
    edited.write_text(edited.read_text().replace("c-edited passed", "c-edited PASSED"))

    [trend] = declared.discover()["resilience/chaos"].trends
    series = report.trend_series("resilience/chaos", trend, ledger.read_entries(outputs), outputs)
    assert list(series) == ["sandbox", "staging"]
    assert [(r["run_id"], r["line"], r["value"]) for r in series["sandbox"]] == [
        ("c-first", "kill-random-service", 0.4),
        ("c-slow", "kill-random-service", 12.5),
    ]  # the dry run recovered nothing; the edited notebook is no longer evidence
    built = report.build(tmp_path / "report", outputs_dir=outputs, workers=1)
    from bs4 import BeautifulSoup

    page = BeautifulSoup(built.index.read_text(encoding="utf-8"), "html.parser")
    charts = {c["data-chart"]: c for c in page.select(".chart")}
    assert {"resilience/chaos:sandbox", "resilience/chaos:staging"} <= set(charts)
    assert "Chaos: time to recover per experiment (s): sandbox" in str(charts["resilience/chaos:sandbox"])


def _plotted_traces(chart: str) -> list[dict[str, object]]:
    """The traces a chart's HTML hands Plotly (its first JSON array argument)."""
    start = chart.index("Plotly.newPlot(")
    data = chart[chart.index("[", start) :]
    traces, _ = json.JSONDecoder().raw_decode(data)
    assert isinstance(traces, list)
    return traces


def test_the_platform_drill_chart_draws_rpo_on_its_own_axis_apart_from_rto(tmp_path: Path) -> None:
    outputs = tmp_path / "outputs"
    for run_id, started_at, rpo in (
        ("p-first", "2026-11-01T10:00:00+00:00", 0.0),
        ("p-behind", "2026-11-02T10:00:00+00:00", 95.5),
        ("p-target", "2026-11-03T10:00:00+00:00", None),  # a drill to target_time: no RPO
    ):
        _entry(
            outputs,
            run_id,
            started_at,
            "passed" if rpo == 0.0 else "failed",
            runbook="dr/platform-drill",
            parameters={"dry_run": False},
            summary={
                "dry_run": False,
                "postgres_from": "pgbackrest",
                "set_id": "20261101T090000Z",
                "rpo_s": rpo,
                "rto_by_datastore": {"postgres": 30.0, "redis": 34.0, "all": 40.0},
            },
        )
    [trend] = declared.discover()["dr/platform-drill"].trends
    [(name, chart)] = report.trend_charts("dr/platform-drill", trend, ledger.read_entries(outputs), outputs)
    assert name == "dr/platform-drill:sandbox" and "RTO per datastore" in chart
    traces = _plotted_traces(chart)
    axes = {t["name"]: t.get("yaxis", "y") for t in traces}
    assert axes == {"postgres": "y", "redis": "y", "all": "y", "RPO": "y2"}  # two quantities, two axes
    [rpo] = [t for t in traces if t["name"] == "RPO"]
    assert rpo["y"] == [0.0, 95.5]  # the drill to a target time has none
    assert '"text":"RPO (s)"' in chart and '"text":"RTO (s)"' in chart


# -- declarations: a new runbook needs no edit in evidence/ -------------------------------------------

MADE_UP_STEPS = """
def check(rb):
    return None


# -- Evidence ---------------------------------------------------------------------------------------
from vextrus_nb.evidence import declared  # noqa: E402

EVIDENCE = declared.Evidence(
    figures=(declared.Figure("wobble_ms", "wobble", "ms"),),
    trends=(
        declared.Trend(
            "Wobble per widget (ms): {env}",
            plots=(declared.Plot("widgets", each=True, field="wobble_ms"),),
            empty="Wobble",
            value_title="wobble_ms",
            line_title="widget",
            unit="ms",
        ),
    ),
    kinds=(
        declared.Kind(
            "wobble",
            passed_only=True,
            figure="wobble_ms",
            gauges=(
                declared.Gauge("vextrus_wobble_ms", "The newest passed check's wobble", "figure"),
                declared.Gauge("vextrus_wobble_last_run_timestamp_seconds", "When it ended", "ended_at"),
            ),
        ),
    ),
)
"""


@pytest.fixture
def made_up_runbook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A runbook the package has never heard of, `ops/wobble-check`: its notebook, and its steps
    module `madeup_runbooks/ops/wobble_check.py` ending with its declaration, found the way every
    runbook's is (steps_location names the module; nothing in evidence/ is told about it)."""
    import sys

    from vextrus_nb import steps_location

    notebooks = tmp_path / "notebooks"
    (notebooks / "ops").mkdir(parents=True)
    (notebooks / "ops" / "wobble-check.ipynb").write_text("{}")
    package = tmp_path / "modules" / "madeup_runbooks"
    (package / "ops").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "ops" / "__init__.py").write_text("")
    (package / "ops" / "wobble_check.py").write_text(MADE_UP_STEPS)
    monkeypatch.syspath_prepend(str(tmp_path / "modules"))
    monkeypatch.setattr(steps_location, "PACKAGE", "madeup_runbooks")
    monkeypatch.setenv("VEXTRUS_NOTEBOOKS_DIR", str(notebooks))
    yield tmp_path / "outputs"
    for name in [m for m in sys.modules if m.startswith("madeup_runbooks")]:
        del sys.modules[name]


def test_a_new_runbooks_declaration_reaches_the_report_and_the_metrics(made_up_runbook: Path) -> None:
    outputs = made_up_runbook
    assert list(declared.discover()) == ["ops/wobble-check"]
    _entry(
        outputs,
        "w-first",
        "2026-11-01T10:00:00+00:00",
        "passed",
        runbook="ops/wobble-check",
        ended_at="2026-11-01T10:01:00+00:00",
        summary={"widgets": {"left": {"wobble_ms": 3.5}, "right": {"wobble_ms": 7.0}}, "wobble_ms": 7.0},
    )
    built = report.build(outputs / "report", outputs_dir=outputs, workers=1)
    from bs4 import BeautifulSoup

    page = BeautifulSoup(built.index.read_text(encoding="utf-8"), "html.parser")
    charts = {c["data-chart"]: c for c in page.select(".chart")}
    assert "ops/wobble-check:sandbox" in charts
    traces = _plotted_traces(str(charts["ops/wobble-check:sandbox"]))
    assert {t["name"]: t["y"] for t in traces} == {"left": [3.5], "right": [7.0]}
    assert "Wobble per widget (ms): sandbox" in str(charts["ops/wobble-check:sandbox"])
    [figure] = page.select('tr.run[data-run-id="w-first"] .figure')
    assert figure["data-figure"] == "wobble_ms" and figure["title"] == "wobble (ms)"

    text = metrics.exposition(outputs, 3600.0).decode()
    assert 'vextrus_evidence_present{environment="sandbox",kind="wobble"} 1.0' in text
    assert 'vextrus_wobble_ms{environment="sandbox"} 7.0' in text
    assert "vextrus_wobble_last_run_timestamp_seconds" in text
    assert metrics.evidence_kinds() == {"wobble": "ops/wobble-check"}


def test_a_declared_chart_with_no_run_to_draw_says_so(made_up_runbook: Path) -> None:
    [trend] = declared.discover()["ops/wobble-check"].trends
    [(name, text)] = report.trend_charts("ops/wobble-check", trend, [], made_up_runbook)
    assert (
        name == "ops/wobble-check"
        and text == "<p class='empty'>Wobble: no sealed ops/wobble-check runs yet.</p>"
    )


def test_every_committed_declaration_is_plain_data_read_without_importing_its_module() -> None:
    """What discover() reads from the source is what the module holds once imported, and needs
    no import (the report and the metrics endpoint load no client library for it)."""
    import importlib

    from vextrus_nb.steps_location import module_name

    found = declared.discover()
    assert {"dr/backup", "dr/drill", "dr/platform-drill", "resilience/chaos", "resilience/load"} <= set(found)
    assert "verify/checklist" in found
    for runbook, evidence in found.items():
        module = module_name(runbook)
        assert declared.read_without_import(module) == evidence, runbook
        imported = importlib.import_module(module).EVIDENCE
        assert imported == evidence, runbook
    kinds = metrics.evidence_kinds(found)
    assert kinds == {"backup": "dr/backup", "dr_drill": "dr/drill", "checklist": "verify/checklist"}
