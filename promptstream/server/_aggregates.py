"""What the results need from an experiment's stored runs and events: per variant, a few counts, means with their
sums of squared deviations, and the order statistics of latency. The stores compute them in SQL (_results_sql.py);
``aggregate_rows`` computes the same from rows in memory, for simulations and tests that read the results of
thousands of experiments without a database.

The rules are docs/experiments.md's: a run clicked or converted if it has such an event; the latest feedback and
rating of a run (by timestamp, then event id) replace earlier ones; engagement adds up per run; a stored number that
is not finite or lies beyond the wire limit (|x| <= 1e9) is left out and counted per field.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ._quantiles import QuantilePlan, quantile_plan
from ._stats import RatioSummary, Summary

__all__ = [
    "LATENCY_QUANTILES",
    "USAGE_METRICS",
    "VALUE_LIMIT",
    "Aggregates",
    "VariantAggregate",
    "aggregate_rows",
    "latency_estimates",
    "stored_number",
]

VALUE_LIMIT = 1e9  # the wire limit on ratings and engagement scores (docs/protocol.md, "Limits")
USAGE_METRICS = ("input_tokens", "output_tokens", "tokens", "cost_usd")
LATENCY_QUANTILES = {"median": 0.5, "p95": 0.95}


@dataclass
class VariantAggregate:
    name: str
    runs: int = 0
    users: int = 0
    clicked_runs: int = 0
    clicked_users: int = 0
    converted_runs: int = 0
    converted_users: int = 0
    votes: int = 0
    thumbs_up: int = 0
    rating: Summary = field(default_factory=lambda: Summary(0, 0.0, 0.0))
    engagement: Summary = field(default_factory=lambda: Summary(0, 0.0, 0.0))
    latency_n: int = 0
    latency: dict[str, dict[str, Any]] = field(default_factory=dict)  # quantile label -> value, interval, error
    usage: dict[str, RatioSummary] = field(default_factory=dict)  # metric -> per-run mean and per-conversion ratio
    events: dict[str, int] = field(default_factory=dict)


@dataclass
class Aggregates:
    variants: dict[str, VariantAggregate] = field(default_factory=dict)
    excluded: dict[str, int] = field(default_factory=dict)

    def exclude(self, name: str) -> None:
        self.excluded[name] = self.excluded.get(name, 0) + 1


def latency_estimates(n: int) -> dict[str, QuantilePlan]:
    """The order statistics each reported latency quantile needs from ``n`` latencies."""
    plans = {label: quantile_plan(n, q) for label, q in LATENCY_QUANTILES.items()}
    return {label: plan for label, plan in plans.items() if plan is not None}


def stored_number(value: object, low: float = -VALUE_LIMIT) -> float | None:
    """The value as a float if it is a number within [low, VALUE_LIMIT]; None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, int) and abs(value) > VALUE_LIMIT:
        return None  # before float(): a 400-digit int would raise OverflowError
    number = float(value)
    return number if math.isfinite(number) and low <= number <= VALUE_LIMIT else None


@dataclass(slots=True)
class _Run:
    variant: str
    user: str | None
    usage: dict[str, float | None]
    latency: float | None = None
    clicked: bool = False
    converted: bool = False
    thumbs_up: bool | None = None
    rating: float | None = None
    engagement: float | None = None
    latest: dict[str, str] = field(default_factory=dict)  # (timestamp, event_id) of the latest replacing event


def aggregate_rows(runs: Iterable[tuple[Any, ...]], events: Iterable[tuple[Any, ...]]) -> Aggregates:
    """``runs``: (run_id, variant, external_user_id[, latency_ms, input_tokens, output_tokens, cost_usd]);
    ``events``: (run_id, type, thumbs_up, rating, engagement_score, timestamp, event_id)."""
    aggregates = Aggregates()
    by_id: dict[Any, _Run] = {}
    for row in runs:
        run_id, variant, user = row[0], str(row[1]), (str(row[2]) if row[2] is not None else None)
        metrics = [stored_number(value, 0.0) for value in (*row[3:7], None, None, None, None)[:4]]
        latency, input_tokens, output_tokens, cost = metrics
        tokens = input_tokens + output_tokens if input_tokens is not None and output_tokens is not None else None
        usage = {"input_tokens": input_tokens, "output_tokens": output_tokens, "tokens": tokens, "cost_usd": cost}
        by_id[run_id] = _Run(variant, user, usage, latency)
        aggregates.variants.setdefault(variant, VariantAggregate(variant))
    for run_id, kind, thumbs_up, rating, engagement, timestamp, event_id in events:
        target = by_id.get(run_id)
        if target is None:
            continue
        counts = aggregates.variants[target.variant].events
        counts[str(kind)] = counts.get(str(kind), 0) + 1
        _apply(target, str(kind), thumbs_up, rating, engagement, f"{timestamp}|{event_id}", aggregates)
    grouped: dict[str, list[_Run]] = {}
    for run in by_id.values():
        grouped.setdefault(run.variant, []).append(run)
    for name, members in grouped.items():
        _summarise(aggregates.variants[name], members)
    return aggregates


def _apply(
    run: _Run, kind: str, thumbs_up: object, rating: object, engagement: object, order: str, into: Aggregates
) -> None:
    if kind == "click":
        run.clicked = True
    elif kind == "conversion":
        run.converted = True
    elif kind == "engagement" and engagement is not None:
        score = stored_number(engagement)
        if score is None:
            into.exclude("engagement_score")
            return
        run.engagement = (run.engagement or 0.0) + score
    elif kind == "feedback" and thumbs_up is not None:
        if thumbs_up not in (0, 1):  # a bool stored as INTEGER is 0 or 1; anything else is not an opinion
            into.exclude("thumbs_up")
        elif order >= run.latest.get(kind, ""):  # the newest (by timestamp, then id) wins, whatever the order read
            run.latest[kind] = order
            run.thumbs_up = bool(thumbs_up)
    elif kind == "rating" and rating is not None:
        value = stored_number(rating)
        if value is None:
            into.exclude("rating")
        elif order >= run.latest.get(kind, ""):
            run.latest[kind] = order
            run.rating = value


def _summarise(variant: VariantAggregate, runs: list[_Run]) -> None:
    users = {run.user for run in runs if run.user is not None}
    variant.runs, variant.users = len(runs), len(users)
    variant.clicked_runs = sum(run.clicked for run in runs)
    variant.converted_runs = sum(run.converted for run in runs)
    variant.clicked_users = len({run.user for run in runs if run.user is not None and run.clicked})
    variant.converted_users = len({run.user for run in runs if run.user is not None and run.converted})
    votes = [run.thumbs_up for run in runs if run.thumbs_up is not None]
    variant.votes, variant.thumbs_up = len(votes), sum(votes)
    variant.rating = Summary.of([run.rating for run in runs if run.rating is not None])
    variant.engagement = Summary.of([run.engagement for run in runs if run.engagement is not None])
    for metric in USAGE_METRICS:
        pairs = [(value, float(run.converted)) for run in runs if (value := run.usage[metric]) is not None]
        y, x = Summary.of([p[0] for p in pairs]), Summary.of([p[1] for p in pairs])
        cross = math.fsum((value - y.mean) * (converted - x.mean) for value, converted in pairs)
        variant.usage[metric] = RatioSummary(
            y.n, y.mean, x.mean, y.squared_deviations, x.squared_deviations, cross
        )  # fmt: skip
    latencies = sorted(run.latency for run in runs if run.latency is not None)
    variant.latency_n = len(latencies)
    variant.latency = {
        label: {"n": plan.n, **plan.estimate({rank: latencies[rank - 1] for rank in plan.ranks()})}
        for label, plan in latency_estimates(len(latencies)).items()
    }
