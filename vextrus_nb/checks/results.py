"""A checklist run's results: the table, the readiness score, the chart, and
the JUnit / JSON files other tools read."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vextrus_nb.checks.model import CATEGORY_TITLES, CATEGORY_WEIGHTS, CheckResult
from vextrus_nb.display import styled_table

if TYPE_CHECKING:
    import pandas as pd

STATUS_ORDER = {"failed": 0, "error": 1, "passed": 2, "not_applicable": 3}
STATUS_COLOURS = {"passed": "#1a7f37", "failed": "#cf222e", "error": "#8250df", "not_applicable": "#57606a"}
DEFAULT_THRESHOLD = 80.0


@dataclass
class ChecklistResult:
    results: list[CheckResult]
    seconds: float
    env: str
    latency_budget_ms: float

    # -- data ---------------------------------------------------------------------
    @property
    def frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame([r.as_row() for r in self.results])

    def result(self, check_id: str) -> CheckResult:
        return next(r for r in self.results if r.check.id == check_id)

    @property
    def failed(self) -> list[CheckResult]:
        """Failed and could-not-run checks alike: both count against the score."""
        return [r for r in self.results if r.counted and not r.passed]

    def categories(self) -> pd.DataFrame:
        """Per category: passed weight over total weight, and its share of the score."""
        import pandas as pd

        rows = []
        for category, weight in CATEGORY_WEIGHTS.items():
            counted = [r for r in self.results if r.check.category == category and r.counted]
            total = sum(r.check.weight for r in counted)
            passed = sum(r.check.weight for r in counted if r.passed)
            # A category with nothing to measure earns nothing: the score is measured, never assumed.
            percent = 100.0 * passed / total if total else 0.0
            rows.append(
                {
                    "category": category,
                    "title": CATEGORY_TITLES[category],
                    "weight": weight,
                    "checks": len(counted),
                    "passed": sum(r.passed for r in counted),
                    "category_score": round(percent, 1),
                    "points": round(weight * percent / 100, 2),
                }
            )
        return pd.DataFrame(rows)

    @property
    def score(self) -> float:
        return round(float(self.categories()["points"].sum()), 1)

    def critical_failures(self) -> list[str]:
        return [r.check.id for r in self.failed if r.check.severity == "critical"]

    def findings(self) -> pd.DataFrame:
        """One row per finding: which check, which subject, what."""
        import pandas as pd

        rows = [
            {"check": r.check.id, "severity": r.check.severity, "subject": f.subject, "detail": f.detail}
            for r in self.results
            for f in r.findings
        ]
        rows += [
            {"check": r.check.id, "severity": r.check.severity, "subject": "(check)", "detail": r.evidence}
            for r in self.results
            if r.status == "error"
        ]
        return pd.DataFrame(rows, columns=["check", "severity", "subject", "detail"])

    def summary(self, threshold: float = DEFAULT_THRESHOLD) -> dict[str, Any]:
        categories = self.categories()
        return {
            "score": round(float(categories["points"].sum()), 1),
            "threshold": threshold,
            "checks": sum(r.counted for r in self.results),
            "passed": sum(r.passed for r in self.results),
            "failed_checks": [r.check.id for r in self.failed],
            "critical_failed": self.critical_failures(),
            "by_category": dict(zip(categories["category"], categories["category_score"], strict=True)),
            "checklist_seconds": round(self.seconds, 2),
        }

    # -- display ----------------------------------------------------------------
    def table(self) -> Any:
        """Grouped by category (in weight order), failures first within each."""
        frame = self.frame
        frame = frame.assign(
            _category=frame["category"].map(list(CATEGORY_WEIGHTS).index),
            _status=frame["status"].map(STATUS_ORDER),
        ).sort_values(["_category", "_status", "id"])
        frame = frame.drop(columns=["_category", "_status", "criterion", "findings", "seconds"])
        frame = frame.set_index(["category", "id"])
        styler = frame.style.map(
            lambda v: f"color: white; background-color: {STATUS_COLOURS.get(v, '#57606a')}", subset=["status"]
        )
        return styled_table(styler)

    def findings_table(self) -> Any:
        """The findings, in full (the plain-text form too: an auditor greps it)."""
        return styled_table(self.findings().style.hide(axis="index"))

    def figure(self, threshold: float = DEFAULT_THRESHOLD) -> Any:
        import plotly.graph_objects as go

        categories = self.categories()
        colours = ["#1a7f37" if s >= threshold else "#cf222e" for s in categories["category_score"]]
        fig = go.Figure(
            go.Bar(
                x=categories["title"],
                y=categories["category_score"],
                marker_color=colours,
                text=[
                    f"{s:.0f}% x {w}"
                    for s, w in zip(categories["category_score"], categories["weight"], strict=True)
                ],
                customdata=categories[["checks", "passed", "points"]],
                hovertemplate="%{x}<br>%{y:.1f}% of weight %{text}<br>%{customdata[1]} of %{customdata[0]} "
                "checks passed<br>%{customdata[2]} points<extra></extra>",
            )
        )
        fig.add_hline(y=threshold, line_dash="dash", annotation_text=f"threshold {threshold:g}")
        fig.update_layout(
            title=f"Production readiness {self.score:.1f} / 100 ({self.env}), per category",
            yaxis_title="category score (%)",
            yaxis_range=[0, 105],
            height=420,
        )
        return fig

    # -- export -------------------------------------------------------------------
    def to_json(self, threshold: float = DEFAULT_THRESHOLD) -> dict[str, Any]:
        return {
            "env": self.env,
            "summary": self.summary(threshold),
            "categories": self.categories().to_dict(orient="records"),
            "checks": [
                {
                    **r.check.describe(),
                    "status": r.status,
                    "evidence": r.evidence,
                    "findings": [{"subject": f.subject, "detail": f.detail} for f in r.findings],
                    "seconds": round(r.seconds, 3),
                }
                for r in self.results
            ],
        }

    def to_junit(self, threshold: float = DEFAULT_THRESHOLD) -> str:
        """JUnit XML: a testsuite per category, a testcase per check (skipped when not applicable)."""
        import xml.etree.ElementTree as ET  # here: the checklist's refusals import this module

        suites = ET.Element(
            "testsuites",
            name=f"vextrus readiness checklist ({self.env})",
            tests=str(len(self.results)),
            failures=str(sum(r.status == "failed" for r in self.results)),
            errors=str(sum(r.status == "error" for r in self.results)),
            time=f"{self.seconds:.3f}",
        )
        for category in CATEGORY_WEIGHTS:
            members = [r for r in self.results if r.check.category == category]
            suite = ET.SubElement(
                suites,
                "testsuite",
                name=category,
                tests=str(len(members)),
                failures=str(sum(r.status == "failed" for r in members)),
                errors=str(sum(r.status == "error" for r in members)),
                skipped=str(sum(r.status == "not_applicable" for r in members)),
                time=f"{sum(r.seconds for r in members):.3f}",
            )
            for r in members:
                case = ET.SubElement(
                    suite,
                    "testcase",
                    classname=f"readiness.{category}",
                    name=f"{r.check.id} {r.check.title}",
                    time=f"{r.seconds:.3f}",
                )
                if r.status == "failed":
                    failure = ET.SubElement(case, "failure", message=r.evidence, type=r.check.severity)
                    failure.text = (
                        "\n".join(str(f) for f in r.findings) + f"\n\nremediation: {r.check.remediation}"
                    )
                elif r.status == "error":
                    ET.SubElement(case, "error", message=r.evidence, type="could-not-run")
                elif r.status == "not_applicable":
                    ET.SubElement(case, "skipped", message=r.evidence)
                ET.SubElement(case, "system-out").text = r.evidence
            props = ET.SubElement(suite, "properties")
            ET.SubElement(props, "property", name="weight", value=str(CATEGORY_WEIGHTS[category]))
        ET.SubElement(
            ET.SubElement(suites, "properties"), "property", name="score", value=f"{self.score:.1f}"
        )
        ET.indent(suites)
        return ET.tostring(suites, encoding="unicode", xml_declaration=True)

    def export(self, path: Path, report_format: str, threshold: float = DEFAULT_THRESHOLD) -> Path:
        """Write the JUnit XML or JSON file and return its path."""
        path.parent.mkdir(parents=True, exist_ok=True)
        if report_format == "junit":
            path.write_text(self.to_junit(threshold))
        elif report_format == "json":
            path.write_text(json.dumps(self.to_json(threshold), indent=2))
        else:
            raise ValueError(f"unknown report_format '{report_format}'; use junit or json")
        return path
