"""The figures inside experiment results (docs/experiments.md defines each): a rate, a mean, a quantile or a ratio
with its interval, and the lift over the control with its fixed-horizon and always-valid intervals."""

from __future__ import annotations

import msgspec

__all__ = ["LatencyResult", "LiftEstimate", "MeanResult", "QuantileResult", "RateResult", "RatioResult", "UsageResult"]


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
