"""Experiment results as the results endpoint returns them (``GET /v1/experiments/{id}/results``, docs/protocol.md;
every figure is defined in docs/experiments.md). Decoded leniently: a newer server's extra fields are ignored."""

from __future__ import annotations

from typing import Any

import msgspec

from ._estimate_models import (
    LatencyResult,
    LiftEstimate,
    MeanResult,
    QuantileResult,
    RateResult,
    RatioResult,
    UsageResult,
)
from ._timeseries_models import ExperimentTimeseries, TimeseriesRow

__all__ = [
    "DataQuality",
    "Decision",
    "ExperimentResults",
    "ExperimentTimeseries",
    "GuardrailViolation",
    "LatencyResult",
    "LiftEstimate",
    "MeanResult",
    "OutcomeRates",
    "QuantileResult",
    "RateResult",
    "RatioResult",
    "SampleRatio",
    "TimeseriesRow",
    "UsageResult",
    "VariantResult",
]


class OutcomeRates(msgspec.Struct, frozen=True, kw_only=True):
    """An outcome (click, conversion) counted once per run, and once per user.

    Example:
        ```python
        clicks = results.variant("v1").click_through
        print(clicks.per_run.rate, clicks.per_user.rate)
        ```
    """

    per_run: RateResult
    """Runs with at least one such event, among all runs."""
    per_user: RateResult
    """Users with at least one such event, among users with a run (runs without a user id are left out)."""


class VariantResult(msgspec.Struct, frozen=True, kw_only=True):
    """Everything measured for one variant of an experiment.

    Example:
        ```python
        for variant in results.variants:
            print(variant.variant, variant.runs, variant.conversion.per_user.rate, variant.thumbs_up.rate)
        ```
    """

    variant: str
    """The variant's name, e.g. ``"v1"``."""
    weight: float
    """Its configured share of traffic."""
    runs: int
    users: int
    """Distinct ``external_user_id`` values among its runs."""
    events: dict[str, int]
    """Deduplicated events per type."""
    click_through: OutcomeRates
    conversion: OutcomeRates
    thumbs_up: RateResult
    """Share of runs whose latest feedback is a thumbs-up, among runs with feedback."""
    rating: MeanResult
    """The latest rating of each rated run."""
    engagement: MeanResult
    """Each engaged run's total engagement."""
    latency_ms: LatencyResult | None = None
    """Model latency (median, p95); None from a server that predates run metrics."""
    input_tokens: UsageResult | None = None
    """Prompt tokens per run and per conversion."""
    output_tokens: UsageResult | None = None
    """Output tokens per run and per conversion."""
    tokens: UsageResult | None = None
    """Input plus output tokens per run and per conversion."""
    cost_usd: UsageResult | None = None
    """US dollars per run and per conversion (runs with a configured price)."""
    guardrail_violations: list[str] = []
    """Guardrail metrics (e.g. ``"thumbs_up"``) on which this variant is significantly worse than the control,
    by the always-valid, Holm-adjusted test."""


class SampleRatio(msgspec.Struct, frozen=True, kw_only=True):
    """Chi-squared goodness-of-fit of runs and users per variant against the configured weights.

    Example:
        ```python
        if results.sample_ratio.mismatch:
            print("traffic split does not match the weights: fix assignment before reading lifts")
        ```
    """

    runs_p_value: float | None
    users_p_value: float | None
    mismatch: bool
    """Either p-value below 0.001: the assignment itself looks broken; do not trust the lifts."""


class GuardrailViolation(msgspec.Struct, frozen=True, kw_only=True):
    """A variant significantly worse than the control on a guardrail metric.

    Example:
        ```python
        for violation in results.decision.guardrail_violations:
            print(violation.variant, violation.metric, violation.lift)
        ```
    """

    variant: str
    """The variant that is worse, e.g. ``"v2"``."""
    metric: str
    """e.g. ``"thumbs_up"`` or ``"rating"``."""
    lift: float
    """Its lift over the control on that metric (negative: worse)."""
    adjusted_p_value: float
    """The always-valid p-value, Holm-adjusted across the guardrail comparisons."""


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """What to do with the experiment now, by the peeking-safe rule (docs/experiments.md, "The decision").

    Example:
        ```python
        decision = client.get_experiment_results(experiment_id).decision
        if decision is not None and decision.action == "ship":
            print(f"ship {decision.winner}: {decision.reason}")
        ```
    """

    action: str
    """``ship``, ``keep_running``, ``no_difference``, ``keep_control``, ``stop_guardrail`` or ``investigate``."""
    winner: str | None
    """The variant to ship (only with ``action == "ship"``)."""
    reason: str
    """Why, in words."""
    primary_metric: str
    """The metric the decision is made on (conversion per user)."""
    guardrail_metrics: list[str]
    """The metrics a shipped variant must not be significantly worse on (e.g. ``thumbs_up``, ``rating``)."""
    alpha: float
    """The error rate the rule controls across variants and metrics (Holm)."""
    method: str
    """The always-valid method the decision reads (docs/experiments.md cites it)."""
    guardrail_violations: list[GuardrailViolation] = []
    """Every variant and guardrail metric found significantly worse than the control."""


class DataQuality(msgspec.Struct, frozen=True, kw_only=True):
    """Stored values the results left out (not finite, beyond the wire limit, or not a number).

    Example:
        ```python
        print(results.data_quality.excluded)  # e.g. {"rating": 2}
        ```
    """

    excluded: dict[str, int]
    """Left-out values per stored field (``rating``, ``engagement_score``, ``thumbs_up``, ``weight``)."""
    value_limit: float
    """The largest magnitude a rating or engagement score may have (the wire limit)."""


class ExperimentResults(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /v1/experiments/{id}/results``: every figure is explained in docs/experiments.md.

    Example:
        ```python
        results = client.get_experiment_results(run.experiment_id)
        for variant in results.variants:
            print(variant.variant, variant.conversion.per_user.rate, variant.conversion.per_user.p_value)
        ```
    """

    experiment_id: str
    prompt_id: str
    control: str | None
    """The variant the others are compared with: the first one configured."""
    variants: list[VariantResult]
    sample_ratio: SampleRatio
    sufficient_sample: bool
    """False until every variant has 100 runs, 10 of them with a conversion and 10 without."""
    warnings: list[str]
    """Why the numbers cannot be trusted yet, in words (empty when they can)."""
    decision: Decision | None = None
    """The peeking-safe decision; None from a server that predates it."""
    data_quality: DataQuality | None = None
    """What the results left out of the stored data; None from a server that predates it."""

    def variant(self, name: str) -> VariantResult:
        """The variant called ``name``; ``KeyError`` if the experiment has none.

        Example:
            ```python
            v2 = client.get_experiment_results(experiment_id).variant("v2")
            ```
        """
        for variant in self.variants:
            if variant.variant == name:
                return variant
        raise KeyError(name)

    # -- as data (promptstream/_results_export.py) ------------------------------------------------------------------

    def rows(self) -> list[dict[str, Any]]:
        """One dict per variant and metric: the estimate with its 95% interval, the lift over the control with its
        fixed-horizon and always-valid intervals and p-values (every column: docs/recipes.md, "Results in a notebook").

        Example:
            ```python
            for row in results.rows():
                print(row["variant"], row["metric"], row["estimate"], row["always_valid_p_value"])
            ```
        """
        from ._results_export import result_rows

        return result_rows(self)

    def to_dict(self) -> dict[str, list[Any]]:
        """``rows()`` as columns, ``{column: [one value per variant and metric]}``, in plain Python values.

        Example:
            ```python
            table = results.to_dict()
            print(dict(zip(table["variant"], table["estimate"])))
            ```
        """
        from ._results_export import results_to_dict

        return results_to_dict(self)

    def to_pandas(self) -> Any:
        """``rows()`` as a ``pandas.DataFrame``; needs ``pip install 'promptstream[pandas]'`` (else
        ``MissingDependencyError``).

        Example:
            ```python
            frame = results.to_pandas()
            print(frame[frame.metric == "conversion_per_user"][["variant", "estimate", "always_valid_p_value"]])
            ```
        """
        from ._results_export import results_to_pandas

        return results_to_pandas(self)

    def to_polars(self) -> Any:
        """``rows()`` as a ``polars.DataFrame``; needs ``pip install 'promptstream[polars]'`` (else
        ``MissingDependencyError``).

        Example:
            ```python
            frame = results.to_polars()
            ```
        """
        from ._results_export import results_to_polars

        return results_to_polars(self)

    def _repr_html_(self) -> str:
        from ._results_export import results_html

        return results_html(self)

    def __repr__(self) -> str:
        from ._results_export import results_repr

        return results_repr(self)
