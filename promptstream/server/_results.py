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

from ._aggregates import VALUE_LIMIT, Aggregates, VariantAggregate, aggregate_rows
from ._decision import GUARDRAIL_METRICS, decide
from ._figures import mean_result, rate_result, usage_results
from ._stats import sample_ratio_p_value

__all__ = ["MIN_RUNS_PER_VARIANT", "SRM_ALPHA", "VALUE_LIMIT", "compute_results", "results_from_aggregates"]

MIN_RUNS_PER_VARIANT = 100  # below this a variant's figures are flagged as too early to trust
MIN_OUTCOMES = 10  # successes and failures each, for the normal approximation behind rates and their tests
SRM_ALPHA = 0.001  # the usual threshold for a sample-ratio-mismatch alarm: it should essentially never fire by chance


@dataclass
class _Excluded:
    """Stored values the results leave out, per field (reported as ``data_quality``)."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1


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
    runs: Iterable[tuple[Any, ...]],
    events: Iterable[tuple[Any, ...]],
) -> dict[str, Any]:
    """The results from rows in memory (simulations and tests): ``runs`` are (run_id, variant, external_user_id[,
    latency_ms, input_tokens, output_tokens, cost_usd]); ``events`` (run_id, type, thumbs_up, rating,
    engagement_score, timestamp, event_id). The stores compute the same aggregates in SQL."""
    return results_from_aggregates(experiment, aggregate_rows(runs, events))


def results_from_aggregates(
    experiment: dict[str, Any], aggregates: Aggregates, guardrails: tuple[str, ...] = GUARDRAIL_METRICS
) -> dict[str, Any]:
    """The results endpoint's answer from an experiment and its per-variant aggregates; ``guardrails`` are the
    metrics the decision guards (_decision.py)."""
    excluded = _Excluded(dict(aggregates.excluded))
    stored_variants = experiment["variants"] if isinstance(experiment["variants"], list) else []
    configured = [
        (f"v{v['version']}" if v.get("version") is not None else None, _weight(v.get("weight"), excluded))
        for v in (item if isinstance(item, dict) else {} for item in stored_variants)
    ]
    variants: dict[str, _Variant] = {
        name: _Variant(name, weight, VariantAggregate(name)) for name, weight in configured if name is not None
    }
    for name, aggregate in aggregates.variants.items():
        if name in variants:
            variants[name].data = aggregate
        else:  # the default experiment's "latest version", or a version since retired
            variants[name] = _Variant(name, configured[0][1] if len(configured) == 1 else 0.0, aggregate)
    ordered = sorted(variants.values(), key=lambda v: v.name)
    control = next((variants[name] for name, _ in configured if name in variants), ordered[0] if ordered else None)
    results = [_variant_result(v, control) for v in ordered]
    warnings = _warnings(ordered, results)
    runs_p = sample_ratio_p_value([v.data.runs for v in ordered], [v.weight for v in ordered])
    users_p = sample_ratio_p_value([v.data.users for v in ordered], [v.weight for v in ordered])
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
    answer["decision"] = decide(answer, guardrails=guardrails)
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


@dataclass
class _Variant:
    name: str
    weight: float
    data: VariantAggregate


def _variant_result(variant: _Variant, control: _Variant | None) -> dict[str, Any]:
    data = variant.data
    base = control.data if control is not None and control is not variant else None

    def rates(outcome: str) -> dict[str, Any]:
        runs, users = getattr(data, f"{outcome}_runs"), getattr(data, f"{outcome}_users")
        base_run = (getattr(base, f"{outcome}_runs"), base.runs) if base is not None else None
        base_user = (getattr(base, f"{outcome}_users"), base.users) if base is not None else None
        return {
            "per_run": rate_result(runs, data.runs, base_run),
            "per_user": rate_result(users, data.users, base_user),
        }

    return {
        "variant": variant.name,
        "weight": variant.weight,
        "runs": data.runs,
        "users": data.users,
        "events": dict(sorted(data.events.items())),
        "click_through": rates("clicked"),
        "conversion": rates("converted"),
        "thumbs_up": rate_result(data.thumbs_up, data.votes, (base.thumbs_up, base.votes) if base else None),
        "rating": mean_result(data.rating, base.rating if base else None),
        "engagement": mean_result(data.engagement, base.engagement if base else None),
        **usage_results(data, base),
        "guardrail_violations": [],
    }


def _warnings(variants: Sequence[_Variant], results: Sequence[dict[str, Any]]) -> list[str]:
    warnings = []
    for variant, result in zip(variants, results, strict=True):
        if variant.data.runs < MIN_RUNS_PER_VARIANT:
            warnings.append(f"too few runs: {variant.name} has {variant.data.runs} (< {MIN_RUNS_PER_VARIANT})")
            continue
        conversions = result["conversion"]["per_run"]
        if min(conversions["successes"], conversions["trials"] - conversions["successes"]) < MIN_OUTCOMES:
            warnings.append(
                f"too few outcomes: {variant.name} has {conversions['successes']} conversions in"
                f" {conversions['trials']} runs (each side needs {MIN_OUTCOMES} for the normal approximation)"
            )
    return warnings
