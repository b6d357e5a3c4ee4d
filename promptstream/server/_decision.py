"""The decision the server applies to an experiment's results, so a dashboard or a CI job never interprets
p-values: ``ship`` / ``keep_running`` / ``no_difference`` / ``keep_control`` / ``stop_guardrail`` / ``investigate``,
with the reason in words. Only always-valid (peeking-safe) figures decide, Holm-adjusted across the variants (and,
for guardrails, across every guardrail metric too). The rule is documented in docs/experiments.md, "The decision".
"""

from __future__ import annotations

from typing import Any

from ._sequential import ALPHA, holm

__all__ = [
    "EQUIVALENCE_MARGIN",
    "GUARDRAIL_METRICS",
    "LOWER_IS_BETTER",
    "METRICS",
    "MIN_COMPARISON_SAMPLE",
    "PRIMARY_METRIC",
    "decide",
    "guardrails_from",
]

METRICS: dict[str, tuple[str, ...]] = {
    "conversion_per_user": ("conversion", "per_user"),
    "conversion_per_run": ("conversion", "per_run"),
    "click_through_per_user": ("click_through", "per_user"),
    "click_through_per_run": ("click_through", "per_run"),
    "thumbs_up": ("thumbs_up",),
    "rating": ("rating",),
    "engagement": ("engagement",),
    "latency_median": ("latency_ms", "median"),
    "latency_p95": ("latency_ms", "p95"),
}
LOWER_IS_BETTER = frozenset({"latency_median", "latency_p95"})  # a positive lift on these is worse
PRIMARY_METRIC = "conversion_per_user"
GUARDRAIL_METRICS = ("thumbs_up", "rating")  # higher is better for both; engagement's direction depends on the app
EQUIVALENCE_MARGIN = 0.10  # "no difference": the whole interval on the lift within ±10% of the control's value
MIN_COMPARISON_SAMPLE = 10  # observations a side before a guardrail comparison may flag anything


def _metric(variant: dict[str, Any], name: str) -> dict[str, Any]:
    node: Any = variant
    for key in METRICS[name]:
        node = node[key]
    result: dict[str, Any] = node
    return result


def _size(figure: dict[str, Any]) -> int:
    return int(figure["trials"] if "trials" in figure else figure["n"])


def _adjust(challengers: list[dict[str, Any]], names: list[str]) -> None:
    """Holm across every (variant, metric) pair of one family; the adjusted p-value lands in ``always_valid``."""
    pairs = [(v, name) for name in names for v in challengers if _metric(v, name)["always_valid"] is not None]
    adjusted = holm([_metric(v, name)["always_valid"]["p_value"] for v, name in pairs])
    for (variant, name), p_value in zip(pairs, adjusted, strict=True):
        _metric(variant, name)["always_valid"]["adjusted_p_value"] = p_value


def _worse(name: str, lift: float) -> bool:
    return lift > 0 if name in LOWER_IS_BETTER else lift < 0


def guardrails_from(text: str | None) -> tuple[str, ...]:
    """The guardrail metrics a results request names (``?guardrails=thumbs_up,latency_p95``; empty for none); the
    defaults without one. ValueError naming an unknown metric."""
    if text is None:
        return GUARDRAIL_METRICS
    names = tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    known = sorted(set(METRICS) - {PRIMARY_METRIC})
    for name in names:
        if name not in known:
            raise ValueError(f"unknown guardrail metric {name!r}; choose from {', '.join(known)}")
    return names


def _significant(figure: dict[str, Any], alpha: float) -> bool:
    estimate = figure["always_valid"]
    return estimate is not None and estimate["adjusted_p_value"] is not None and estimate["adjusted_p_value"] < alpha


def decide(
    answer: dict[str, Any],
    primary: str = PRIMARY_METRIC,
    guardrails: tuple[str, ...] = GUARDRAIL_METRICS,
    alpha: float = ALPHA,
) -> dict[str, Any]:
    """Fill in the Holm-adjusted always-valid p-values and the guardrail flags of ``answer``; return the decision."""
    control_name = answer["control"]
    variants: list[dict[str, Any]] = answer["variants"]
    challengers = [v for v in variants if v["variant"] != control_name]
    if primary == "conversion_per_user" and variants and all(v["users"] == 0 for v in variants):
        primary = "conversion_per_run"  # runs carry no user ids: per-user figures are empty
    for name in METRICS:
        if name not in guardrails:
            _adjust(challengers, [name])
    _adjust(challengers, list(guardrails))
    violations = []
    for variant in challengers:
        for name in guardrails:
            figure = _metric(variant, name)
            control_size = _size(_metric(next(v for v in variants if v["variant"] == control_name), name))
            large_enough = min(_size(figure), control_size) >= MIN_COMPARISON_SAMPLE
            if large_enough and _significant(figure, alpha) and _worse(name, figure["always_valid"]["lift"]):
                variant["guardrail_violations"].append(name)
                violations.append(
                    {
                        "variant": variant["variant"],
                        "metric": name,
                        "lift": figure["always_valid"]["lift"],
                        "adjusted_p_value": figure["always_valid"]["adjusted_p_value"],
                    }
                )
    decision: dict[str, Any] = {
        "action": "keep_running",
        "winner": None,
        "reason": "",
        "primary_metric": primary,
        "guardrail_metrics": list(guardrails),
        "alpha": alpha,
        "method": (
            f"asymptotic confidence sequences (Waudby-Smith et al. 2024), Holm across {len(challengers)}"
            f" variant{'s' if len(challengers) != 1 else ''} against {control_name}"
        ),
        "guardrail_violations": violations,
    }
    decision["action"], decision["winner"], decision["reason"] = _rule(answer, challengers, primary, alpha)
    return decision


def _rule(
    answer: dict[str, Any], challengers: list[dict[str, Any]], primary: str, alpha: float
) -> tuple[str, str | None, str]:
    label = primary.replace("_", " ")
    if not challengers:
        return "keep_running", None, "only one variant has runs: nothing to compare yet"
    if answer["sample_ratio"]["mismatch"]:
        return "investigate", None, "sample ratio mismatch: the traffic split does not match the weights"
    flagged = {v["variant"]: v["guardrail_violations"] for v in challengers if v["guardrail_violations"]}
    flags = "; ".join(f"{name} is significantly worse on {', '.join(metrics)}" for name, metrics in flagged.items())
    winners = [v for v in challengers if _significant(_metric(v, primary), alpha) and _metric(v, primary)["lift"] > 0]
    clean = [v for v in winners if not v["guardrail_violations"]]
    if answer["sufficient_sample"] and clean:
        best = max(clean, key=lambda v: _metric(v, primary)["lift"])
        figure = _metric(best, primary)["always_valid"]
        scale, unit = (100.0, " pts") if "rate" in _metric(best, primary) else (1.0, "")
        reason = (
            f"{best['variant']} beats {answer['control']} on {label} by {figure['lift'] * scale:+.3g}{unit}"
            f" (always-valid 95% interval [{figure['ci_low'] * scale:+.3g}, {figure['ci_high'] * scale:+.3g}]{unit},"
            f" adjusted p = {figure['adjusted_p_value']:.3g} < {alpha})"
        )
        return "ship", best["variant"], reason + (f"; also: {flags}" if flags else "")
    if flagged and (winners or len(flagged) == len(challengers)):
        subject = "the primary metric wins, but " if winners else ""
        return "stop_guardrail", None, f"{subject}{flags}"
    if not answer["sufficient_sample"]:
        early = next(w for w in answer["warnings"] if w.startswith("too few"))
        return "keep_running", None, f"too early: {early}" + (f"; already: {flags}" if flags else "")
    if all(_significant(_metric(v, primary), alpha) and _metric(v, primary)["lift"] < 0 for v in challengers):
        return "keep_control", None, f"every variant is significantly worse than {answer['control']} on {label}"
    if all(_equivalent(answer, v, primary) for v in challengers):
        return (
            "no_difference",
            None,
            f"every variant's always-valid interval on {label} lies within ±{EQUIVALENCE_MARGIN:.0%} of"
            f" {answer['control']}'s value",
        )
    p_values = [_metric(v, primary)["always_valid"]["adjusted_p_value"] for v in challengers]
    smallest = min((p for p in p_values if p is not None), default=None)
    shown = f"{smallest:.3g}" if smallest is not None else "undefined"
    return (
        "keep_running",
        None,
        f"no variant differs significantly from {answer['control']} on {label} yet (smallest adjusted"
        f" always-valid p = {shown}; it stays valid however often you look)" + (f"; {flags}" if flags else ""),
    )


def _equivalent(answer: dict[str, Any], variant: dict[str, Any], primary: str) -> bool:
    control = next(v for v in answer["variants"] if v["variant"] == answer["control"])
    figure = _metric(control, primary)
    base = figure["rate"] if "rate" in figure else figure["mean"]
    estimate = _metric(variant, primary)["always_valid"]
    if base is None or estimate is None or estimate["ci_low"] is None:
        return False
    margin = EQUIVALENCE_MARGIN * abs(base)
    return bool(-margin < estimate["ci_low"] and estimate["ci_high"] < margin)
