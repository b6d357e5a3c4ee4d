"""One figure of a variant's results with its interval and, against the control, its lift by both methods (fixed
horizon and always valid): rates (Wilson; two-proportion z), means (t; Welch), quantiles (order statistics) and
ratios per conversion (delta method). docs/experiments.md defines each; _stats.py, _quantiles.py and _sequential.py
hold the statistics."""

from __future__ import annotations

import math
from typing import Any

from ._aggregates import LATENCY_QUANTILES, USAGE_METRICS, VariantAggregate
from ._sequential import always_valid_interval, always_valid_p_value
from ._stats import (
    Z_95,
    RatioSummary,
    Summary,
    normal_sf,
    proportion_difference_interval,
    summary_interval,
    two_proportion_z_test,
    welch_difference_interval,
    welch_t_test,
    wilson_interval,
)

__all__ = ["estimate", "mean_result", "quantile_result", "rate_result", "ratio_result", "usage_results"]


def estimate(lift: float, interval: tuple[float, float] | None, p_value: float | None) -> dict[str, Any]:
    return {
        "lift": lift,
        "ci_low": interval[0] if interval else None,
        "ci_high": interval[1] if interval else None,
        "p_value": p_value,
        "adjusted_p_value": None,  # filled in by the decision rule for the comparisons it uses
    }


def rate_result(successes: int, trials: int, control: tuple[int, int] | None) -> dict[str, Any]:
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
        result["fixed_horizon"] = estimate(
            lift, proportion_difference_interval(control[0], control[1], successes, trials), result["p_value"]
        )
        variance = control_rate * (1 - control_rate) / control[1] + rate * (1 - rate) / trials
        result["always_valid"] = estimate(
            lift,
            always_valid_interval(lift, variance, trials + control[1]),
            always_valid_p_value(lift, variance, trials + control[1]),
        )
    return result


def _lifts(lift: float, variance: float | None, observations: int, result: dict[str, Any]) -> None:
    """A normal-approximation lift: the fixed-horizon interval and p-value, and the always-valid ones, from the
    lift's estimated variance."""
    if variance is None or not (variance > 0.0 and math.isfinite(variance)):
        result["fixed_horizon"] = estimate(lift, None, None)
        return
    error = math.sqrt(variance)
    p_value = min(1.0, 2.0 * normal_sf(abs(lift) / error))
    result["p_value"] = p_value
    result["fixed_horizon"] = estimate(lift, (lift - Z_95 * error, lift + Z_95 * error), p_value)
    result["always_valid"] = estimate(
        lift,
        always_valid_interval(lift, variance, observations),
        always_valid_p_value(lift, variance, observations),
    )


def mean_result(values: Summary, control: Summary | None) -> dict[str, Any]:
    """A mean with its t-interval; against the control, Welch's test and interval and the always-valid ones."""
    mean = values.mean if values.n else None
    interval = summary_interval(values)
    result: dict[str, Any] = {
        "n": values.n,
        "mean": mean,
        "ci_low": interval[0] if interval else None,
        "ci_high": interval[1] if interval else None,
        "lift": None,
        "relative_lift": None,
        "p_value": None,
        "fixed_horizon": None,
        "always_valid": None,
    }
    if control is not None and mean is not None and control.n:
        lift = mean - control.mean
        result["lift"] = lift
        result["relative_lift"] = lift / control.mean if control.mean else None
        result["p_value"] = welch_t_test(control, values)
        result["fixed_horizon"] = estimate(lift, welch_difference_interval(control, values), result["p_value"])
        if values.n >= 2 and control.n >= 2:
            error = values.variance / values.n + control.variance / control.n
            result["always_valid"] = estimate(
                lift,
                always_valid_interval(lift, error, values.n + control.n),
                always_valid_p_value(lift, error, values.n + control.n),
            )
    return result


def quantile_result(figure: dict[str, Any] | None, control: dict[str, Any] | None) -> dict[str, Any]:
    """A quantile (``figure``: n, value, its order-statistic interval and standard error) and its lift over the
    control's: the difference, with the standard errors of both quantiles combined."""
    figure = figure or {"n": 0, "value": None, "ci_low": None, "ci_high": None, "standard_error": None}
    result: dict[str, Any] = {
        "n": figure["n"],
        "value": figure["value"],
        "ci_low": figure["ci_low"],
        "ci_high": figure["ci_high"],
        "lift": None,
        "relative_lift": None,
        "p_value": None,
        "fixed_horizon": None,
        "always_valid": None,
    }
    if control is not None and figure["value"] is not None and control["value"] is not None:
        lift = figure["value"] - control["value"]
        result["lift"] = lift
        result["relative_lift"] = lift / control["value"] if control["value"] else None
        errors = (figure["standard_error"], control["standard_error"])
        variance = errors[0] ** 2 + errors[1] ** 2 if None not in errors else None
        _lifts(lift, variance, figure["n"] + control["n"], result)
    return result


def ratio_result(ratio: RatioSummary, control: RatioSummary | None) -> dict[str, Any]:
    """A total per conversion (mean per run over conversions per run) with its delta-method interval; against the
    control, the difference of the two ratios."""
    value, variance = ratio.ratio, ratio.variance
    half = Z_95 * math.sqrt(variance) if variance is not None else None
    result: dict[str, Any] = {
        "n": ratio.n,
        "conversions": round(ratio.denominator * ratio.n),
        "value": value,
        "ci_low": value - half if value is not None and half is not None else None,
        "ci_high": value + half if value is not None and half is not None else None,
        "lift": None,
        "relative_lift": None,
        "p_value": None,
        "fixed_horizon": None,
        "always_valid": None,
    }
    base = control.ratio if control is not None else None
    if control is not None and value is not None and base is not None:
        lift = value - base
        result["lift"] = lift
        result["relative_lift"] = lift / base if base else None
        base_variance = control.variance
        combined = variance + base_variance if variance is not None and base_variance is not None else None
        _lifts(lift, combined, ratio.n + control.n, result)
    return result


def usage_results(data: VariantAggregate, base: VariantAggregate | None) -> dict[str, Any]:
    """Latency (median, p95), tokens and cost (per run, per conversion) of a variant against the control."""
    latency: dict[str, Any] = {"n": data.latency_n}
    for label in LATENCY_QUANTILES:
        latency[label] = quantile_result(data.latency.get(label), base.latency.get(label) if base else None)
    figures: dict[str, Any] = {"latency_ms": latency}
    for metric in USAGE_METRICS:
        usage = data.usage.get(metric) or RatioSummary(0, 0.0, 0.0, 0.0, 0.0, 0.0)
        control = (base.usage.get(metric) or RatioSummary(0, 0.0, 0.0, 0.0, 0.0, 0.0)) if base else None
        per_run = Summary(usage.n, usage.numerator, usage.numerator_deviations)
        control_run = Summary(control.n, control.numerator, control.numerator_deviations) if control else None
        figures[metric] = {
            "per_run": mean_result(per_run, control_run),
            "per_conversion": ratio_result(usage, control),
        }
    return figures
