"""A k6 run read into figures: k6's own summary per endpoint, and the same percentiles computed
again from its time series (every request's duration), so the two can be shown to agree.

k6 computes a trend's percentile by linear interpolation between the two nearest ranks of the
sorted samples; `percentile` below does the same, so on the same samples both give one number.
"""

from __future__ import annotations

import gzip
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from vextrus_nb.resilience.k6 import K6Run, LoadPlan

PERCENTILES = (50, 90, 95, 99)
# Two computations of one percentile over the same samples differ only by float rounding.
AGREEMENT_MS = 0.001


def percentile(values: list[float], pct: float) -> float:
    """k6's TrendSink.P: linear interpolation between the neighbouring ranks."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = pct / 100 * (len(ordered) - 1)
    low, high = ordered[math.floor(rank)], ordered[math.ceil(rank)]
    return low + (high - low) * (rank - math.floor(rank))


@dataclass
class EndpointFigures:
    endpoint: str
    requests: int = 0
    requests_per_s: float = 0.0
    failed_requests: int = 0  # k6's http_req_failed: a transport error or a status outside 200-399
    failed_checks: int = 0  # an answer that came but was wrong (GraphQL errors, no token)
    k6_ms: dict[int, float] = field(default_factory=dict)  # k6's summary: percentile -> ms
    ours_ms: dict[int, float] = field(default_factory=dict)  # the time series, recomputed
    crossed: list[str] = field(default_factory=list)  # "p95 < 300 ms", ... as k6 judged them

    @property
    def p95_ms(self) -> float:
        return self.k6_ms.get(95, 0.0)

    @property
    def agree(self) -> bool:
        return all(
            abs(self.k6_ms.get(p, 0.0) - self.ours_ms.get(p, 0.0)) <= AGREEMENT_MS for p in PERCENTILES
        )

    def record(self) -> dict[str, Any]:
        return {
            **{f"p{p}_ms": round(self.k6_ms.get(p, 0.0), 3) for p in PERCENTILES},
            "our_p95_ms": round(self.ours_ms.get(95, 0.0), 3),
            "requests": self.requests,
            "requests_per_s": round(self.requests_per_s, 2),
            "failed_requests": self.failed_requests,
            "failed_checks": self.failed_checks,
            "thresholds_crossed": list(self.crossed),
        }


@dataclass
class LoadResult:
    endpoints: list[EndpointFigures]
    duration_s: float
    dropped_iterations: int
    thresholds_crossed: bool  # k6 exited 99
    # (seconds since the first request, endpoint, duration ms) of every request, for the chart
    samples: list[tuple[float, str, float]] = field(default_factory=list, repr=False)

    def endpoint(self, name: str) -> EndpointFigures:
        return next(e for e in self.endpoints if e.endpoint == name)

    @property
    def crossed(self) -> dict[str, list[str]]:
        return {e.endpoint: e.crossed for e in self.endpoints if e.crossed}

    @property
    def percentiles_agree(self) -> bool:
        return all(e.agree for e in self.endpoints)

    def per_second(self) -> list[dict[str, Any]]:
        """p50 and p95 per endpoint per second of the run: latency over time."""
        buckets: dict[tuple[str, int], list[float]] = defaultdict(list)
        for offset, endpoint, value in self.samples:
            buckets[(endpoint, int(offset))].append(value)
        return [
            {
                "second": second,
                "endpoint": endpoint,
                "p50_ms": round(percentile(values, 50), 3),
                "p95_ms": round(percentile(values, 95), 3),
                "requests": len(values),
            }
            for (endpoint, second), values in sorted(buckets.items())
        ]


_DURATION = '"metric":"http_req_duration"'
_DROPPED = '"metric":"dropped_iterations"'


def read_result(plan: LoadPlan, run: K6Run) -> LoadResult:
    """k6's summary per endpoint, the time series recomputed beside it."""
    metrics = run.summary.get("metrics", {})
    duration_s = float(run.summary.get("state", {}).get("testRunDurationMs", 0.0)) / 1000
    samples, dropped = _read_time_series(run.time_series)
    by_endpoint: dict[str, list[float]] = defaultdict(list)
    for _, endpoint, value in samples:
        by_endpoint[endpoint].append(value)
    figures = []
    for endpoint in plan.endpoints:
        durations = metrics.get(f"http_req_duration{{endpoint:{endpoint}}}", {})
        failed = metrics.get(f"http_req_failed{{endpoint:{endpoint}}}", {})
        checks = metrics.get(f"checks{{endpoint:{endpoint}}}", {})
        values = durations.get("values", {})
        requests = int(values.get("count", 0))
        figures.append(
            EndpointFigures(
                endpoint=endpoint,
                requests=requests,
                requests_per_s=requests / duration_s if duration_s else 0.0,
                failed_requests=int(failed.get("values", {}).get("passes", 0)),
                failed_checks=int(checks.get("values", {}).get("fails", 0)),
                k6_ms={p: float(values.get(f"p({p})", 0.0)) for p in PERCENTILES},
                ours_ms={p: percentile(by_endpoint[endpoint], p) for p in PERCENTILES},
                crossed=_crossed(metrics, plan.thresholds.for_endpoint(endpoint)),
            )
        )
    return LoadResult(figures, duration_s, dropped, run.thresholds_crossed, samples)


def _crossed(metrics: dict[str, Any], thresholds: dict[str, list[str]]) -> list[str]:
    """The endpoint's thresholds k6 judged failed, as `metric expression`."""
    return [
        _threshold_label(name, expression)
        for name in thresholds
        for expression, verdict in metrics.get(name, {}).get("thresholds", {}).items()
        if not verdict.get("ok", True)
    ]


def _threshold_label(metric: str, expression: str) -> str:
    """`http_req_duration{endpoint:graphql}` + `p(95)<300` -> `http_req_duration p(95)<300`."""
    return f"{metric.partition('{')[0]} {expression}"


def _read_time_series(path: Path) -> tuple[list[tuple[float, str, float]], int]:
    """Every request's duration with its endpoint tag, and the dropped iterations. Only those
    lines are parsed: a run's series holds a dozen samples per request."""
    raw: list[tuple[str, str, float]] = []
    dropped = 0
    if not path.is_file():
        return [], 0
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            if _DURATION in line:
                point = json.loads(line)
                if point.get("type") != "Point":
                    continue
                data = point["data"]
                endpoint = data.get("tags", {}).get("endpoint")
                if endpoint:
                    raw.append((data["time"], endpoint, float(data["value"])))
            elif _DROPPED in line:
                point = json.loads(line)
                if point.get("type") == "Point":
                    dropped += int(point["data"]["value"])
    if not raw:
        return [], dropped
    times = [datetime.fromisoformat(_microseconds(t)) for t, _, _ in raw]
    first = min(times)
    samples = [
        ((moment - first).total_seconds(), endpoint, value)
        for moment, (_, endpoint, value) in zip(times, raw, strict=True)
    ]
    return samples, dropped


def _microseconds(stamp: str) -> str:
    """k6 writes nanoseconds (`...07.631255596Z`); Python 3.11 parses at most microseconds."""
    head, dot, rest = stamp.partition(".")
    if not dot:
        return stamp
    digits = "".join(c for c in rest if c.isdigit())
    zone = rest[len(digits) :]
    return f"{head}.{digits[:6].ljust(6, '0')}{'+00:00' if zone == 'Z' else zone}"
