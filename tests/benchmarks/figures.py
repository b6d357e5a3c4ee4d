"""Medians over a scenario's repeats, shared by the runner's table and the report."""

from __future__ import annotations

import statistics
from typing import Any


def median_of(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [run[key] for run in runs if run.get(key) is not None]
    return statistics.median(values) if values else None


def outage_medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The outage scenario's figures, each the median over its repeats (a drain that never ended stays None)."""
    drains = [run["drain_s"] for run in runs]
    return {
        "peak_rss_mib": median_of(runs, "peak_rss_mib"),
        "outage_delivered": int(statistics.median(run["outage_delivered"] for run in runs)),
        "drain_s": None if None in drains else statistics.median(drains),
        "disk_bytes_per_event": median_of(runs, "disk_bytes_per_event"),
    }
