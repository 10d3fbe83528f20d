"""A triage's results as data first (findings, reports, timeline) and as
tables, a figure and commands second."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any

from vextrus_nb.config import Component
from vextrus_nb.display import Shown, styled_table
from vextrus_nb.triage.model import CollectorReport, Finding, TimelineEvent
from vextrus_nb.triage.picture import dependency_figure
from vextrus_nb.triage.rules import INCIDENT_SEVERITIES

SEVERITY_COLOURS = {"critical": "#cf222e", "high": "#fb8500", "medium": "#bf8700", "low": "#57606a"}
COLLECTOR_COLOURS = {"ok": "#1a7f37", "error": "#cf222e", "skipped": "#57606a"}


@dataclass
class TriageResult:
    reports: list[CollectorReport]
    findings: list[Finding]
    components: list[Component]
    seconds: float
    at: datetime
    window_minutes: float

    def report(self, name: str) -> CollectorReport:
        return next(r for r in self.reports if r.name == name)

    @property
    def top(self) -> Finding | None:
        return self.findings[0] if self.findings else None

    @property
    def incident(self) -> list[Finding]:
        return [f for f in self.findings if f.severity in INCIDENT_SEVERITIES]

    # -- tables ---------------------------------------------------------------------
    def collection_table(self) -> Any:
        import pandas as pd

        frame = pd.DataFrame(
            [
                {
                    "collector": r.name,
                    "status": r.status,
                    "seconds": r.seconds,
                    "symptoms": len(r.signals),
                    "what it saw": r.detail,
                }
                for r in self.reports
            ]
        )
        return styled_table(
            frame.style.map(
                lambda v: f"color: white; background-color: {COLLECTOR_COLOURS.get(v, '#57606a')}",
                subset=["status"],
            )
        )

    def findings_frame(self) -> Any:
        import pandas as pd

        columns = [
            "rank",
            "component",
            "severity",
            "finding",
            "role",
            "affected",
            "likely cause",
            "first action",
            "evidence",
        ]
        return pd.DataFrame([f.as_row() for f in self.findings], columns=columns)

    def findings_table(self) -> Any:
        if not self.findings:
            return "No findings: every component answers, and nothing inside PostgreSQL or Redis looks wrong."
        return styled_table(
            self.findings_frame()
            .set_index("rank")
            .style.map(
                lambda v: f"color: white; background-color: {SEVERITY_COLOURS.get(v, '#57606a')}",
                subset=["severity"],
            )
        )

    def figure(self) -> Any:
        return dependency_figure(self.components, self.findings)

    def timeline_frame(self) -> Any:
        import pandas as pd

        events: list[TimelineEvent] = sorted((e for r in self.reports for e in r.events), key=lambda e: e.at)
        return pd.DataFrame(
            [
                {
                    "time (UTC)": e.at.strftime("%Y-%m-%d %H:%M:%S"),
                    "source": e.source,
                    "component": e.component,
                    "event": e.what,
                }
                for e in events
            ],
            columns=["time (UTC)", "source", "component", "event"],
        )

    def timeline_table(self) -> Any:
        frame = self.timeline_frame()
        if frame.empty:
            return f"Nothing happened in the last {self.window_minutes:g} minutes that the platform recorded."
        return frame

    def postgres_tables(self) -> list[Any]:
        import pandas as pd

        report = self.report("postgres")
        if report.status != "ok":
            return [f"PostgreSQL not inspected: {report.detail}"]
        sessions = pd.DataFrame(report.data["sessions"])
        return [
            pd.DataFrame([report.data["limits"]]),
            pd.DataFrame(report.data["connections"]).head(15),
            sessions
            if not sessions.empty
            else "No blocked, blocking, idle-in-transaction or long-running sessions.",
            pd.DataFrame(report.data["replicas"]) if report.data["replicas"] else "No replicas attached.",
        ]

    def redis_table(self) -> Any:
        import pandas as pd

        report = self.report("redis")
        if report.status != "ok":
            return f"Redis not inspected: {report.detail}"
        info = report.data["info"]
        return pd.DataFrame({"value": [str(v) for v in info.values()]}, index=list(info))

    def traffic_table(self) -> Any:
        import pandas as pd

        report = self.report("metrics")
        if report.status != "ok":
            return f"Service metrics not read: {report.detail}"
        return pd.DataFrame(report.data["traffic"])

    def driver_table(self) -> Any:
        import pandas as pd

        report = self.report("driver")
        if report.status != "ok":
            return f"Driver state not read: {report.detail}"
        rows = [
            {
                "component": s.component,
                "state": s.state,
                "restarts": s.restarts,
                "exit code": s.exit_code,
                "OOM killed": s.oom_killed,
                "started (UTC)": f"{s.started_at:%H:%M:%S}" if s.started_at else "",
                "detail": s.detail,
            }
            for s in report.data["states"]
        ]
        frame = pd.DataFrame(rows)
        stopped_first = frame.assign(_order=frame["state"].ne("stopped"))
        return (
            stopped_first.sort_values(["_order", "component"]).drop(columns="_order").reset_index(drop=True)
        )

    def log_lines(self) -> Any:
        report = self.report("logs")
        if report.status != "ok":
            return f"Logs not read: {report.detail}"
        lines = report.data["lines"]
        if not lines:
            return "Every component is healthy: no logs needed."
        text = "\n\n".join(
            f"== {name} ==\n" + ("\n".join(found) or "(no error lines in the window)")
            for name, found in lines.items()
        )
        return Shown(f"<pre>{escape(text)}</pre>", text)

    def next_commands(self, limit: int = 3) -> Any:
        """The commands of the top root causes' rules, ready to paste."""
        chosen = [f for f in self.findings if f.root_cause][:limit]
        if not chosen:
            return "Nothing to run: no findings."
        parts = [f"# {f.rank}. {f.title}\n" + "\n".join(f.commands) for f in chosen if f.commands]
        text = "\n\n".join(parts)
        return Shown(f"<pre>{escape(text)}</pre>", text)

    def summary(self) -> dict[str, Any]:
        top = self.top
        return {
            "findings": len(self.findings),
            "incident_findings": len(self.incident),
            "root_causes": sorted({f.component for f in self.findings if f.root_cause}),
            "top_finding_component": top.component if top else None,
            "top_finding": top.title if top else None,
            "top_severity": top.severity if top else None,
            "collection_seconds": round(self.seconds, 2),
            "collectors_failed": [r.name for r in self.reports if r.status == "error"],
        }
