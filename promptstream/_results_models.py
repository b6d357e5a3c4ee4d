"""Experiment results as the results endpoint returns them (``GET /v1/experiments/{id}/results``, docs/protocol.md;
every figure is defined in docs/experiments.md). Decoded leniently: a newer server's extra fields are ignored."""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = [
    "DataQuality",
    "Decision",
    "ExperimentResults",
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


class LiftEstimate(msgspec.Struct, frozen=True, kw_only=True):
    """A variant's lift over the control with its 95% interval and p-value, by one method: ``fixed_horizon`` (valid
    only when read once, at a sample size fixed in advance) or ``always_valid`` (valid however often it is read).

    Example:
        ```python
        safe = results.variant("v2").conversion.per_user.always_valid
        if safe is not None and safe.ci_low is not None and safe.ci_low > 0:
            print(f"v2 is better by at least {safe.ci_low:+.1%}, whenever you looked")
        ```
    """

    lift: float
    """The variant's value minus the control's (absolute)."""
    ci_low: float | None
    """Lower end of the 95% interval on the lift; None when it is undefined (no variance)."""
    ci_high: float | None
    """Upper end of the 95% interval on the lift."""
    p_value: float | None
    """Two-sided p-value of "no difference"; None when it is undefined."""
    adjusted_p_value: float | None = None
    """``always_valid`` only: Holm-adjusted across the comparisons of its family (docs/experiments.md)."""


class RateResult(msgspec.Struct, frozen=True, kw_only=True):
    """A proportion with its 95% Wilson interval and, for a variant other than the control, its lift and the
    two-sided p-value of a pooled two-proportion z-test against the control.

    Example:
        ```python
        conversion = results.variant("v2").conversion.per_user
        if conversion.p_value is not None and conversion.p_value < 0.05:
            print(f"v2 converts {conversion.lift:+.1%} vs the control, p = {conversion.p_value:.3f}")
        ```
    """

    successes: int
    """Runs (or users) with the outcome."""
    trials: int
    """Runs (or users) that could have had it."""
    rate: float | None
    """``successes / trials``; None with no trials."""
    ci_low: float
    """Lower end of the 95% Wilson interval."""
    ci_high: float
    """Upper end of the 95% Wilson interval."""
    lift: float | None = None
    """``rate`` minus the control's rate (absolute); None for the control itself."""
    relative_lift: float | None = None
    """``lift`` divided by the control's rate; None when that is 0 or for the control."""
    p_value: float | None = None
    """Fixed-horizon two-sided p-value of the difference from the control (pooled z-test): valid only when read
    once at a pre-registered sample size. None for the control or with too little data."""
    fixed_horizon: LiftEstimate | None = None
    """The lift with its fixed-horizon 95% interval (Wald) and p-value; None for the control."""
    always_valid: LiftEstimate | None = None
    """The lift with its always-valid 95% interval and p-value: safe to read after every user. None for the
    control."""


class MeanResult(msgspec.Struct, frozen=True, kw_only=True):
    """A mean with its 95% t-interval and, against the control, its lift and Welch's t-test p-value.

    Example:
        ```python
        rating = results.variant("v2").rating
        print(f"{rating.mean:.2f} stars from {rating.n} rated runs, p = {rating.p_value}")
        ```
    """

    n: int
    """Observations: rated runs for ``rating``, engaged runs for ``engagement``."""
    mean: float | None
    """None with no observations."""
    ci_low: float | None
    """Lower end of the 95% t-interval; None with fewer than 2 observations."""
    ci_high: float | None
    """Upper end of the 95% t-interval; None with fewer than 2 observations."""
    lift: float | None = None
    """``mean`` minus the control's mean; None for the control itself."""
    relative_lift: float | None = None
    """``lift`` divided by the control's mean."""
    p_value: float | None = None
    """Fixed-horizon two-sided p-value of Welch's t-test against the control."""
    fixed_horizon: LiftEstimate | None = None
    """The lift with its fixed-horizon 95% Welch interval and p-value; None for the control."""
    always_valid: LiftEstimate | None = None
    """The lift with its always-valid 95% interval and p-value; None for the control."""


class QuantileResult(msgspec.Struct, frozen=True, kw_only=True):
    """A quantile (the median or p95 of latency) with its distribution-free 95% interval (order statistics) and,
    against the control, the difference with its fixed-horizon and always-valid intervals (docs/experiments.md,
    "Latency, tokens and cost"). Lower latency is better: a positive lift is slower.

    Example:
        ```python
        p95 = results.variant("v2").latency_ms.p95
        print(f"p95 {p95.value:.0f} ms [{p95.ci_low}, {p95.ci_high}], {p95.lift:+.0f} ms vs the control")
        ```
    """

    n: int
    """Runs with a recorded latency."""
    value: float | None
    """The quantile (linear interpolation between order statistics, NumPy's default); None without runs."""
    ci_low: float | None
    """Lower end of the 95% interval; None when there are too few runs for it."""
    ci_high: float | None
    """Upper end of the 95% interval; None when there are too few runs for it (a p95 needs about 60)."""
    lift: float | None = None
    """``value`` minus the control's; None for the control itself."""
    relative_lift: float | None = None
    """``lift`` divided by the control's value."""
    p_value: float | None = None
    """Fixed-horizon two-sided p-value of the difference (normal approximation)."""
    fixed_horizon: LiftEstimate | None = None
    """The difference with its fixed-horizon 95% interval; None for the control."""
    always_valid: LiftEstimate | None = None
    """The difference with its always-valid 95% interval and p-value; None for the control or without spread."""


class LatencyResult(msgspec.Struct, frozen=True, kw_only=True):
    """A variant's model latency in milliseconds: median and p95.

    Example:
        ```python
        latency = results.variant("v2").latency_ms
        print(latency.median.value, latency.p95.value)
        ```
    """

    n: int
    """Runs with a recorded latency."""
    median: QuantileResult
    """The median latency (p50)."""
    p95: QuantileResult
    """The 95th percentile: the slow tail users notice."""


class RatioResult(msgspec.Struct, frozen=True, kw_only=True):
    """A total per conversion (tokens or dollars spent per converting run), with its 95% delta-method interval
    and, against the control, the difference with its fixed-horizon and always-valid intervals.

    Example:
        ```python
        tokens = results.variant("v2").tokens.per_conversion
        if tokens.value is not None:  # None without a conversion (and cost without a price)
            print(f"{tokens.value:,.0f} tokens per conversion ({tokens.conversions} conversions)")
        ```
    """

    n: int
    """Runs with the figure recorded."""
    conversions: int
    """Converted runs among them."""
    value: float | None
    """The figure's total over the conversions; None without a conversion."""
    ci_low: float | None
    """Lower end of the 95% delta-method interval; None with fewer than 2 runs or no conversion."""
    ci_high: float | None
    """Upper end of the 95% delta-method interval."""
    lift: float | None = None
    """``value`` minus the control's; None for the control itself."""
    relative_lift: float | None = None
    """``lift`` divided by the control's value."""
    p_value: float | None = None
    """Fixed-horizon two-sided p-value of the difference."""
    fixed_horizon: LiftEstimate | None = None
    """The difference with its fixed-horizon 95% interval; None for the control."""
    always_valid: LiftEstimate | None = None
    """The difference with its always-valid 95% interval and p-value; None for the control or without spread."""


class UsageResult(msgspec.Struct, frozen=True, kw_only=True):
    """Tokens or cost of a variant, per run (a mean) and per conversion (a ratio).

    Example:
        ```python
        tokens = results.variant("v2").tokens
        print(tokens.per_run.mean, tokens.per_conversion.value)
        ```
    """

    per_run: MeanResult
    """The mean per run with a recorded figure, its t-interval and Welch lift."""
    per_conversion: RatioResult
    """The total over those runs' conversions."""


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


class TimeseriesRow(msgspec.Struct, frozen=True, kw_only=True):
    """One UTC day of one variant (``client.experiments.timeseries``; docs/protocol.md, "Time series"): that day's
    counts, and the cumulative conversion rate per user with its always-valid interval and lift.

    Example:
        ```python
        for row in client.experiments.timeseries(experiment_id):
            print(row.date, row.variant, row.conversion_rate, row.ci_low, row.ci_high)
        ```
    """

    date: str
    """The UTC date, ``YYYY-MM-DD``."""
    variant: str
    """The variant's name, e.g. ``"v2"``."""
    runs: int
    """Runs created that day."""
    users: int
    """Distinct users with a run that day."""
    new_users: int
    """Users whose first run in this variant was that day."""
    conversions: int
    """Conversion events dated that day (by their timestamp)."""
    converted_users: int
    """Users who converted for the first time that day."""
    cumulative_runs: int
    """Runs up to and including that day."""
    cumulative_users: int
    """Users up to and including that day (the sum of ``new_users``)."""
    cumulative_converted_users: int
    """Users who had converted by the end of that day."""
    conversion_rate: float | None
    """Converted users over users, up to and including that day."""
    ci_low: float | None
    """Lower end of the always-valid 95% interval on ``conversion_rate``."""
    ci_high: float | None
    """Upper end of the always-valid 95% interval on ``conversion_rate``."""
    lift: float | None = None
    """``conversion_rate`` minus the control's that day; None for the control."""
    lift_ci_low: float | None = None
    """Lower end of the always-valid 95% interval on ``lift``."""
    lift_ci_high: float | None = None
    """Upper end of the always-valid 95% interval on ``lift``."""
    p_value: float | None = None
    """Always-valid p-value of the lift (not Holm-adjusted: the results' decision is)."""


class ExperimentTimeseries(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /v1/experiments/{id}/timeseries`` as it travels; ``client.experiments.timeseries`` returns ``days``."""

    experiment_id: str
    control: str | None
    days: list[TimeseriesRow]
