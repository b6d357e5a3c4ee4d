"""Per-variant results of an experiment, from its runs and their (already deduplicated) events. Rules and formulas
are documented in docs/experiments.md; the statistics live in _stats.py (fixed horizon) and _sequential.py
(always valid); the decision rule in _decision.py.

Whatever a database holds — rows written before the wire limits existed, by another tool, or by hand — this module
answers: a stored number that is not finite or lies beyond the wire limit (|x| <= 1e9) is left out and counted in
``data_quality``, a weight that is not a positive finite number is left out of the sample-ratio test, and no figure
that reaches the answer is NaN or infinite.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._decision import decide
from ._sequential import always_valid_interval, always_valid_p_value
from ._stats import (
    mean_and_variance,
    proportion_difference_interval,
    sample_ratio_p_value,
    two_proportion_z_test,
    welch_difference_interval,
    welch_interval,
    welch_t_test,
    wilson_interval,
)

__all__ = ["MIN_RUNS_PER_VARIANT", "SRM_ALPHA", "VALUE_LIMIT", "compute_results"]

MIN_RUNS_PER_VARIANT = 100  # below this a variant's figures are flagged as too early to trust
MIN_OUTCOMES = 10  # successes and failures each, for the normal approximation behind rates and their tests
SRM_ALPHA = 0.001  # the usual threshold for a sample-ratio-mismatch alarm: it should essentially never fire by chance
VALUE_LIMIT = 1e9  # the wire limit on ratings and engagement scores (docs/protocol.md, "Limits")


@dataclass(slots=True)
class _Run:
    variant: str
    user: str | None
    clicked: bool = False
    converted: bool = False
    thumbs_up: bool | None = None  # the latest feedback on the run replaces earlier ones
    rating: float | None = None  # likewise the latest rating
    engagement: float | None = None  # engagement events add up: seconds read in two sittings are one run's total
    latest: dict[str, str] = field(default_factory=dict)  # (timestamp, event_id) of the latest replacing event


@dataclass(slots=True)
class _Variant:
    name: str
    weight: float
    runs: list[_Run] = field(default_factory=list)
    events: dict[str, int] = field(default_factory=dict)


@dataclass
class _Excluded:
    """Stored values the results leave out, per field (reported as ``data_quality``)."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1


def _stored_number(value: object, limit: float = VALUE_LIMIT) -> float | None:
    """The value as a float if it is a number within the wire limit; None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, int) and abs(value) > limit:
        return None  # before float(): a 400-digit int would raise OverflowError
    number = float(value)
    return number if math.isfinite(number) and abs(number) <= limit else None


def _weight(value: object, excluded: _Excluded) -> float:
    weight = 0.0
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            weight = float(value)
        except OverflowError:  # an int beyond the float range
            weight = 0.0
    if not 0.0 < weight < math.inf:
        excluded.add("weight")
        return 0.0
    return weight


def compute_results(
    experiment: dict[str, Any],
    runs: Iterable[tuple[str, str, str | None]],
    events: Iterable[tuple[Any, ...]],
) -> dict[str, Any]:
    """``runs``: (run_id, variant, external_user_id); ``events``: (run_id, type, thumbs_up, rating,
    engagement_score, timestamp, event_id)."""
    excluded = _Excluded()
    stored_variants = experiment["variants"] if isinstance(experiment["variants"], list) else []
    configured = [
        (f"v{v['version']}" if v.get("version") is not None else None, _weight(v.get("weight"), excluded))
        for v in (item if isinstance(item, dict) else {} for item in stored_variants)
    ]
    variants: dict[str, _Variant] = {name: _Variant(name, weight) for name, weight in configured if name is not None}
    by_id: dict[str, _Run] = {}
    for run_id, variant, user in runs:
        variant, user = str(variant), (str(user) if user is not None else None)
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
        counts[str(kind)] = counts.get(str(kind), 0) + 1
        _apply(target, str(kind), thumbs_up, rating, engagement, (str(timestamp), str(event_id)), excluded)
    ordered = sorted(variants.values(), key=lambda v: v.name)
    control = next((variants[name] for name, _ in configured if name in variants), ordered[0] if ordered else None)
    results = [_variant_result(v, control) for v in ordered]
    warnings = _warnings(ordered, results)
    runs_p = sample_ratio_p_value([len(v.runs) for v in ordered], [v.weight for v in ordered])
    users_p = sample_ratio_p_value([len(_users(v.runs)) for v in ordered], [v.weight for v in ordered])
    mismatch = any(p is not None and p < SRM_ALPHA for p in (runs_p, users_p))
    if mismatch:
        warnings.insert(0, "sample ratio mismatch: runs or users per variant do not match the configured weights")
    for name, count in sorted(excluded.counts.items()):
        rule = "a positive finite number" if name == "weight" else f"a finite number within ±{VALUE_LIMIT:.0e}"
        if name == "thumbs_up":
            rule = "0 or 1"
        warnings.append(f"left out {count} stored {name} value{'s' if count != 1 else ''} (each must be {rule})")
    sufficient = not any(w.startswith("too few") for w in warnings)
    answer = {
        "experiment_id": experiment["experiment_id"],
        "prompt_id": experiment["prompt_id"],
        "control": control.name if control else None,
        "variants": results,
        "sample_ratio": {"runs_p_value": runs_p, "users_p_value": users_p, "mismatch": mismatch},
        "sufficient_sample": sufficient,
        "warnings": warnings,
        "data_quality": {"excluded": dict(sorted(excluded.counts.items())), "value_limit": VALUE_LIMIT},
    }
    answer["decision"] = decide(answer)
    finite: dict[str, Any] = _finite(answer)
    return finite


def _finite(value: Any) -> Any:
    """The answer with every non-finite float replaced by None: a last line, the computations should not make any."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def _apply(
    run: _Run,
    kind: str,
    thumbs_up: object,
    rating: object,
    engagement: object,
    order: tuple[str, str],
    excluded: _Excluded,
) -> None:
    if kind == "click":
        run.clicked = True
    elif kind == "conversion":
        run.converted = True
    elif kind == "engagement" and engagement is not None:
        score = _stored_number(engagement)
        if score is None:
            excluded.add("engagement_score")
            return
        run.engagement = (run.engagement or 0.0) + score
    elif kind in ("feedback", "rating"):
        key = "|".join(order)
        if key < run.latest.get(kind, ""):
            return  # an older event arrived later: the newest (by timestamp, then id) wins
        if kind == "feedback" and thumbs_up is not None:
            if thumbs_up not in (0, 1):  # a bool stored as INTEGER is 0 or 1; anything else is not an opinion
                excluded.add("thumbs_up")
                return
            run.latest[kind] = key
            run.thumbs_up = bool(thumbs_up)
        elif kind == "rating" and rating is not None:
            value = _stored_number(rating)
            if value is None:
                excluded.add("rating")
                return
            run.latest[kind] = key
            run.rating = value


def _users(runs: Sequence[_Run]) -> set[str]:
    return {run.user for run in runs if run.user is not None}


def _users_where(runs: Sequence[_Run], outcome: str) -> set[str]:
    return {run.user for run in runs if run.user is not None and getattr(run, outcome)}


def _estimate(lift: float, interval: tuple[float, float] | None, p_value: float | None) -> dict[str, Any]:
    return {
        "lift": lift,
        "ci_low": interval[0] if interval else None,
        "ci_high": interval[1] if interval else None,
        "p_value": p_value,
        "adjusted_p_value": None,  # filled in by the decision rule for the comparisons it uses
    }


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
        "fixed_horizon": None,
        "always_valid": None,
    }
    if control is not None and rate is not None and control[1]:
        control_rate = control[0] / control[1]
        lift = rate - control_rate
        result["lift"] = lift
        result["relative_lift"] = lift / control_rate if control_rate else None
        result["p_value"] = two_proportion_z_test(control[0], control[1], successes, trials)
        result["fixed_horizon"] = _estimate(
            lift, proportion_difference_interval(control[0], control[1], successes, trials), result["p_value"]
        )
        variance = control_rate * (1 - control_rate) / control[1] + rate * (1 - rate) / trials
        result["always_valid"] = _estimate(
            lift,
            always_valid_interval(lift, variance, trials + control[1]),
            always_valid_p_value(lift, variance, trials + control[1]),
        )
    return result


def _mean(values: Sequence[float], control: Sequence[float] | None) -> dict[str, Any]:
    mean, variance = mean_and_variance(values) if values else (None, None)
    interval = welch_interval(values)
    result: dict[str, Any] = {
        "n": len(values),
        "mean": mean,
        "ci_low": interval[0] if interval else None,
        "ci_high": interval[1] if interval else None,
        "lift": None,
        "relative_lift": None,
        "p_value": None,
        "fixed_horizon": None,
        "always_valid": None,
    }
    if control is not None and mean is not None and variance is not None and control:
        control_mean, control_variance = mean_and_variance(control)
        lift = mean - control_mean
        result["lift"] = lift
        result["relative_lift"] = lift / control_mean if control_mean else None
        result["p_value"] = welch_t_test(control, values)
        result["fixed_horizon"] = _estimate(lift, welch_difference_interval(control, values), result["p_value"])
        if len(values) >= 2 and len(control) >= 2:
            error = variance / len(values) + control_variance / len(control)
            result["always_valid"] = _estimate(
                lift,
                always_valid_interval(lift, error, len(values) + len(control)),
                always_valid_p_value(lift, error, len(values) + len(control)),
            )
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
        "guardrail_violations": [],
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
