"""Shared helpers: timing with repeats, and writing results beside the code."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def best_of(action: Callable[[], Any], repeats: int = 3) -> tuple[float, list[float]]:
    """Minimum and all wall-clock timings of `action`, in seconds."""
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        timings.append(time.perf_counter() - started)
    return min(timings), timings


def report(name: str, ours: float, baseline: float, **details: Any) -> dict[str, Any]:
    result = {
        "benchmark": name,
        "ours_s": round(ours, 4),
        "baseline_s": round(baseline, 4),
        "ratio": round(ours / baseline, 4) if baseline else None,
        **details,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2))
    print(
        f"{name}: ours {ours:.3f}s, baseline {baseline:.3f}s, ratio {result['ratio']}  "
        + " ".join(f"{k}={v}" for k, v in details.items())
    )
    return result


def median(values: list[float]) -> float:
    return statistics.median(values)
