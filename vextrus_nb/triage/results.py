"""A triage's results as data first (findings, reports, timeline) and as
tables, a figure and commands second."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any

from vextrus_nb.config import Component
from vextrus_nb.display import Shown, note, styled_table
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
    suspected: str = ""
    suspected_path: frozenset[str] = frozenset()  # the suspect and everything it depends on

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
        """A coloured table in the browser; a numbered list on a terminal or in the raw notebook,
        since nine wide columns do not survive as plain text."""
        if not self.findings:
            return note(
                "No findings: every component answers, and nothing inside PostgreSQL or Redis looks wrong."
            )
        styler = (
            self.findings_frame()
            .set_index("rank")
            .style.map(
                lambda v: f"color: white; background-color: {SEVERITY_COLOURS.get(v, '#57606a')}",
                subset=["severity"],
            )
        )
        return Shown(styler.to_html(), "\n".join(_finding_text(f) for f in self.findings))

    def suspect_note(self) -> Shown:
        """Whether the findings touch the service the engineer suspects, or point elsewhere."""
        if not self.suspected:
            return note("No service suspected (parameter `service`): the ranking above is the whole story.")
        on_path = [f for f in self.findings if f.component in self.suspected_path]
        if not on_path:
            return note(
                f"Suspected: {self.suspected}. No finding on it or on what it depends on; "
                "its logs are in section 5."
            )
        ranks = ", ".join(f"#{f.rank} {f.component}" for f in on_path)
        return note(f"Suspected: {self.suspected}. Findings on it or on what it depends on: {ranks}.")

    def figure(self) -> Any:
        return dependency_figure(self.components, self.findings)

    def timeline_frame(self) -> Any:
        """Events of the window, oldest first; the same event on many components in the same
        second (32 starts, 18 identical health failures) is one row naming them all."""
        import pandas as pd

        events: list[TimelineEvent] = sorted((e for r in self.reports for e in r.events), key=lambda e: e.at)
        rows: dict[tuple[str, str, str], dict[str, Any]] = {}
        for event in events:
            when = event.at.strftime("%Y-%m-%d %H:%M:%S")
            key = (when, event.source, _shape(event.what, event.component))
            row = rows.setdefault(
                key, {"time (UTC)": when, "source": event.source, "components": [], "event": event.what}
            )
            if event.component not in row["components"]:
                row["components"].append(event.component)
        frame = pd.DataFrame(list(rows.values()), columns=["time (UTC)", "source", "components", "event"])
        frame["event"] = [
            event if len(names) == 1 else f"{event} (and {len(names) - 1} more alike)"
            for event, names in zip(frame["event"], frame["components"], strict=True)
        ]
        frame["components"] = frame["components"].map(
            lambda names: ", ".join(names) if len(names) <= 3 else f"{len(names)}: {', '.join(names)}"
        )
        return frame

    def timeline_table(self) -> Any:
        frame = self.timeline_frame()
        if frame.empty:
            return note(
                f"Nothing happened in the last {self.window_minutes:g} minutes that the platform recorded."
            )
        return styled_table(frame.style.hide(axis="index"))

    def postgres_tables(self) -> list[Any]:
        import pandas as pd

        report = self.report("postgres")
        if report.status != "ok":
            return [note(f"PostgreSQL not inspected: {report.detail}")]
        sessions = pd.DataFrame(report.data["sessions"])
        return [
            pd.DataFrame([report.data["limits"]]),
            pd.DataFrame(report.data["connections"]).head(15),
            sessions
            if not sessions.empty
            else "No blocked, blocking, idle-in-transaction or long-running sessions.",
            pd.DataFrame(report.data["replicas"])
            if report.data["replicas"]
            else note("No replicas attached."),
        ]

    def ha_tables(self) -> list[Any]:
        """High availability (`ha:`): the replicas as the primary sees them, its slots, the
        replica's own replay state, and each Sentinel's view; a note for a part not declared."""
        import pandas as pd

        names = {r.name for r in self.reports}
        if not {"replication", "sentinels"} & names:
            return [note("The environment declares no `ha:`: no replica nor Sentinel to show.")]
        replication, sentinels = self.report("replication"), self.report("sentinels")
        if replication.status != "ok":
            tables: list[Any] = [note(f"Replication not inspected: {replication.detail}")]
        else:
            data = replication.data
            tables = [
                pd.DataFrame(data["standbys"]) if data["standbys"] else note("The primary shows no replica."),
                pd.DataFrame(data["slots"]) if data["slots"] else note("No replication slot."),
                pd.DataFrame([data["replica"]]),
            ]
        if sentinels.status != "ok":
            tables.append(note(f"Sentinels not inspected: {sentinels.detail}"))
        else:
            tables.append(pd.DataFrame(sentinels.data["sentinels"]))
        return tables

    def redis_table(self) -> Any:
        import pandas as pd

        report = self.report("redis")
        if report.status != "ok":
            return note(f"Redis not inspected: {report.detail}")
        info = report.data["info"]
        return pd.DataFrame({"value": [str(v) for v in info.values()]}, index=list(info))

    def traffic_table(self) -> Any:
        import pandas as pd

        report = self.report("metrics")
        if report.status != "ok":
            return note(f"Service metrics not read: {report.detail}")
        traffic = pd.DataFrame(report.data["traffic"])
        if traffic.empty:
            return note("No service could be scraped.")
        served = traffic[traffic["requests"] > 0].sort_values(["5xx", "requests"], ascending=False)
        if served.empty:
            return note(
                f"{len(traffic)} services scraped; none has served application requests since it started."
            )
        return served.reset_index(drop=True)

    def driver_table(self) -> Any:
        import pandas as pd

        report = self.report("driver")
        if report.status != "ok":
            return note(f"Driver state not read: {report.detail}")
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
            return note(f"Logs not read: {report.detail}")
        lines = report.data["lines"]
        if not lines:
            return note("Every component is healthy: no logs needed.")
        text = "\n\n".join(
            f"== {name} ==\n" + ("\n".join(found) or "(no error lines in the window)")
            for name, found in lines.items()
        )
        return Shown(f"<pre>{escape(text)}</pre>", text)

    def next_commands(self, limit: int = 3) -> Any:
        """The commands of the top root causes' rules, ready to paste."""
        chosen = [f for f in self.findings if f.root_cause][:limit]
        if not chosen:
            return note("Nothing to run: no findings.")
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


def _finding_text(finding: Finding) -> str:
    role = "root cause" if finding.root_cause else f"caused by {', '.join(finding.explained_by)}"
    affected = f"; affects {', '.join(finding.affected)}" if finding.affected else ""
    return (
        f"#{finding.rank} [{finding.severity}] {finding.title} ({role}{affected})\n"
        f"    first action: {finding.first_action}\n"
        f"    evidence: {'; '.join(finding.evidence)}"
    )


_DIGITS = re.compile(r"\d+")
_LEADING_TIME = re.compile(r"^\S*\d{2}:\d{2}:\d{2}\S*\s+(UTC\s+)?(\[\d+\]\s+)?")


def _shape(text: str, component: str) -> str:
    """An event's text without its timestamp, component name and numbers: what makes two events 'the same'."""
    return _DIGITS.sub("#", _LEADING_TIME.sub("", text).replace(component, "*"))
