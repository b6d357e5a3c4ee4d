"""Per-variant results of an experiment, from its runs and their (already deduplicated) events. Rules and formulas
are documented in docs/experiments.md; the statistics live in _stats.py."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._stats import sample_ratio_p_value, two_proportion_z_test, welch_interval, welch_t_test, wilson_interval

__all__ = ["MIN_RUNS_PER_VARIANT", "SRM_ALPHA", "compute_results"]

MIN_RUNS_PER_VARIANT = 100  # below this a variant's figures are flagged as too early to trust
MIN_OUTCOMES = 10  # successes and failures each, for the normal approximation behind rates and their tests
SRM_ALPHA = 0.001  # the usual threshold for a sample-ratio-mismatch alarm: it should essentially never fire by chance


@dataclass
class _Run:
    variant: str
    user: str | None
    clicked: bool = False
    converted: bool = False
    thumbs_up: bool | None = None  # the latest feedback on the run replaces earlier ones
    rating: float | None = None  # likewise the latest rating
    engagement: float | None = None  # engagement events add up: seconds read in two sittings are one run's total
    latest: dict[str, str] = field(default_factory=dict)  # (timestamp, event_id) of the latest replacing event


@dataclass
class _Variant:
    name: str
    weight: float
    runs: list[_Run] = field(default_factory=list)
    events: dict[str, int] = field(default_factory=dict)


def compute_results(
    experiment: dict[str, Any],
    runs: Iterable[tuple[str, str, str | None]],
    events: Iterable[tuple[str, str, int | None, float | None, float | None, str, str]],
) -> dict[str, Any]:
    """``runs``: (run_id, variant, external_user_id); ``events``: (run_id, type, thumbs_up, rating,
    engagement_score, timestamp, event_id)."""
    configured = [
        (f"v{v['version']}" if v["version"] is not None else None, float(v["weight"])) for v in experiment["variants"]
    ]
    variants: dict[str, _Variant] = {name: _Variant(name, weight) for name, weight in configured if name is not None}
    by_id: dict[str, _Run] = {}
    for run_id, variant, user in runs:
        if variant not in variants:  # the default experiment's "latest version", or a version since retired
            variants[variant] = _Variant(variant, configured[0][1] if len(configured) == 1 else 0.0)
        run = _Run(variant, user)
        variants[variant].runs.append(run)
        by_id[run_id] = run
    for run_id, kind, thumbs_up, rating, engagement, timestamp, event_id in events:
        target = by_id.get(run_id)
        if target is None:
            continue
        counts = variants[target.variant].events
        counts[kind] = counts.get(kind, 0) + 1
        _apply(target, kind, thumbs_up, rating, engagement, (timestamp, event_id))
    ordered = sorted(variants.values(), key=lambda v: v.name)
    control = next((variants[name] for name, _ in configured if name in variants), ordered[0] if ordered else None)
    results = [_variant_result(v, control) for v in ordered]
    warnings = _warnings(ordered, results)
    runs_p = sample_ratio_p_value([len(v.runs) for v in ordered], [v.weight for v in ordered])
    users_p = sample_ratio_p_value([len(_users(v.runs)) for v in ordered], [v.weight for v in ordered])
    mismatch = any(p is not None and p < SRM_ALPHA for p in (runs_p, users_p))
    if mismatch:
        warnings.insert(0, "sample ratio mismatch: runs or users per variant do not match the configured weights")
    return {
        "experiment_id": experiment["experiment_id"],
        "prompt_id": experiment["prompt_id"],
        "control": control.name if control else None,
        "variants": results,
        "sample_ratio": {"runs_p_value": runs_p, "users_p_value": users_p, "mismatch": mismatch},
        "sufficient_sample": not any(w.startswith("too few") for w in warnings),
        "warnings": warnings,
    }


def _apply(
    run: _Run,
    kind: str,
    thumbs_up: int | None,
    rating: float | None,
    engagement: float | None,
    order: tuple[str, str],
) -> None:
    if kind == "click":
        run.clicked = True
    elif kind == "conversion":
        run.converted = True
    elif kind == "engagement" and engagement is not None:
        run.engagement = (run.engagement or 0.0) + engagement
    elif kind in ("feedback", "rating"):
        key = "|".join(order)
        if key < run.latest.get(kind, ""):
            return  # an older event arrived later: the newest (by timestamp, then id) wins
        run.latest[kind] = key
        if kind == "feedback" and thumbs_up is not None:
            run.thumbs_up = bool(thumbs_up)
        elif kind == "rating" and rating is not None:
            run.rating = rating


def _users(runs: Sequence[_Run]) -> set[str]:
    return {run.user for run in runs if run.user is not None}


def _users_where(runs: Sequence[_Run], outcome: str) -> set[str]:
    return {run.user for run in runs if run.user is not None and getattr(run, outcome)}


def _rate(successes: int, trials: int, control: tuple[int, int] | None) -> dict[str, Any]:
    low, high = wilson_interval(successes, trials)
    rate = successes / trials if trials else None
    result: dict[str, Any] = {
        "successes": successes,
        "trials": trials,
        "rate": rate,
        "ci_low": low,
        "ci_high": high,
        "lift": None,
        "relative_lift": None,
        "p_value": None,
    }
    if control is not None and trials and control[1]:
        control_rate = control[0] / control[1]
        result["lift"] = rate - control_rate if rate is not None else None
        result["relative_lift"] = (rate - control_rate) / control_rate if rate is not None and control_rate else None
        result["p_value"] = two_proportion_z_test(control[0], control[1], successes, trials)
    return result


def _mean(values: Sequence[float], control: Sequence[float] | None) -> dict[str, Any]:
    mean = math.fsum(values) / len(values) if values else None
    interval = welch_interval(values)
    result: dict[str, Any] = {
        "n": len(values),
        "mean": mean,
        "ci_low": interval[0] if interval else None,
        "ci_high": interval[1] if interval else None,
        "lift": None,
        "relative_lift": None,
        "p_value": None,
    }
    if control is not None and values and control:
        control_mean = math.fsum(control) / len(control)
        result["lift"] = mean - control_mean if mean is not None else None
        result["relative_lift"] = (mean - control_mean) / control_mean if mean is not None and control_mean else None
        result["p_value"] = welch_t_test(control, values)
    return result


def _variant_result(variant: _Variant, control: _Variant | None) -> dict[str, Any]:
    runs = variant.runs
    users = _users(runs)
    baseline = control if control is not None and control is not variant else None

    def rates(outcome: str) -> dict[str, Any]:
        per_run = (sum(getattr(r, outcome) for r in runs), len(runs))
        per_user = (len(_users_where(runs, outcome)), len(users))
        base_run = base_user = None
        if baseline is not None:
            base_run = (sum(getattr(r, outcome) for r in baseline.runs), len(baseline.runs))
            base_user = (len(_users_where(baseline.runs, outcome)), len(_users(baseline.runs)))
        return {"per_run": _rate(*per_run, base_run), "per_user": _rate(*per_user, base_user)}

    def values(source: _Variant, attribute: str) -> list[float]:
        return [value for run in source.runs if (value := getattr(run, attribute)) is not None]

    voted = [run.thumbs_up for run in runs if run.thumbs_up is not None]
    base_voted = [run.thumbs_up for run in baseline.runs if run.thumbs_up is not None] if baseline else None
    return {
        "variant": variant.name,
        "weight": variant.weight,
        "runs": len(runs),
        "users": len(users),
        "events": dict(sorted(variant.events.items())),
        "click_through": rates("clicked"),
        "conversion": rates("converted"),
        "thumbs_up": _rate(
            sum(voted), len(voted), (sum(base_voted), len(base_voted)) if base_voted is not None else None
        ),
        "rating": _mean(values(variant, "rating"), values(baseline, "rating") if baseline else None),
        "engagement": _mean(values(variant, "engagement"), values(baseline, "engagement") if baseline else None),
    }


def _warnings(variants: Sequence[_Variant], results: Sequence[dict[str, Any]]) -> list[str]:
    warnings = []
    for variant, result in zip(variants, results, strict=True):
        if len(variant.runs) < MIN_RUNS_PER_VARIANT:
            warnings.append(f"too few runs: {variant.name} has {len(variant.runs)} (< {MIN_RUNS_PER_VARIANT})")
            continue
        conversions = result["conversion"]["per_run"]
        if min(conversions["successes"], conversions["trials"] - conversions["successes"]) < MIN_OUTCOMES:
            warnings.append(
                f"too few outcomes: {variant.name} has {conversions['successes']} conversions in"
                f" {conversions['trials']} runs (each side needs {MIN_OUTCOMES} for the normal approximation)"
            )
    return warnings
