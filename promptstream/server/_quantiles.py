"""Quantiles (median and p95 latency) from a few order statistics, which the database picks out of its sorted index:
the point estimate, a distribution-free confidence interval, and the standard error the lift's intervals use.
Formulas and references: docs/experiments.md, "Latency, tokens and cost".

- The point estimate is the linear interpolation between order statistics (Hyndman and Fan's definition 7, NumPy's
  default), so ``np.quantile(x, q)`` gives the same number.
- The interval is the classic distribution-free one: the number of observations below the true q-quantile is
  Binomial(n, q), so [X_(l), X_(u)] covers it with probability at least 95% for l and u from the binomial's 2.5% and
  97.5% points (the interval ``scipy.stats.quantile_test(...).confidence_interval()`` computes).
- The standard error of a sample quantile is the interval's width over 2 * 1.96: McKean and Schrader's estimator
  ("A comparison of methods for studentizing the sample median", 1984), which Price and Bonett ("Distribution-free
  confidence intervals for difference and ratio of medians", 2002) use for the difference of two medians.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ._stats import Z_95, normal_sf, regularized_incomplete_beta

__all__ = ["QuantilePlan", "binomial_cdf", "binomial_ppf", "quantile_plan"]

_EXACT_LIMIT = 5_000_000  # beyond this many observations the binomial's normal approximation is exact to a rank


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(B <= k) for B ~ Binomial(n, p)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    return regularized_incomplete_beta(float(n - k), k + 1.0, 1.0 - p, p)


def binomial_sf(k: int, n: int, p: float) -> float:
    """P(B > k) for B ~ Binomial(n, p), computed directly (no 1 - cdf cancellation in the upper tail)."""
    if k < 0:
        return 1.0
    if k >= n:
        return 0.0
    return regularized_incomplete_beta(k + 1.0, float(n - k), p, 1.0 - p)


def binomial_ppf(q: float, n: int, p: float) -> int:
    """The smallest k with P(B <= k) >= q."""
    if n > _EXACT_LIMIT:
        return max(0, min(n, math.ceil(n * p + _normal_quantile(q) * math.sqrt(n * p * (1 - p)) - 0.5)))
    low, high = -1, n  # cdf(low) < q <= cdf(high)
    while high - low > 1:
        middle = (low + high) // 2
        if binomial_cdf(middle, n, p) >= q:
            high = middle
        else:
            low = middle
    return high


def binomial_isf(q: float, n: int, p: float) -> int:
    """The smallest k with P(B > k) <= q."""
    if n > _EXACT_LIMIT:
        return binomial_ppf(1.0 - q, n, p)
    low, high = -1, n  # sf(low) > q >= sf(high)
    while high - low > 1:
        middle = (low + high) // 2
        if binomial_sf(middle, n, p) <= q:
            high = middle
        else:
            low = middle
    return high


def _normal_quantile(q: float) -> float:
    low, high = -40.0, 40.0
    for _ in range(200):
        middle = (low + high) / 2.0
        if 1.0 - normal_sf(middle) < q:
            low = middle
        else:
            high = middle
    return (low + high) / 2.0


@dataclass(frozen=True, slots=True)
class QuantilePlan:
    """Which order statistics (1-based ranks) a quantile of ``n`` observations needs: two for the interpolated point
    estimate, one for each end of the 95% interval (None where n is too small for that end to exist)."""

    n: int
    q: float
    below: int
    above: int
    fraction: float
    lower: int | None
    upper: int | None

    def ranks(self) -> set[int]:
        return {rank for rank in (self.below, self.above, self.lower, self.upper) if rank is not None}

    def estimate(self, values: dict[int, float]) -> dict[str, float | None]:
        """The quantile, its interval and standard error from the order statistics ``values`` (rank -> value)."""
        point = values[self.below] + self.fraction * (values[self.above] - values[self.below])
        low = values[self.lower] if self.lower is not None else None
        high = values[self.upper] if self.upper is not None else None
        error = (high - low) / (2.0 * Z_95) if low is not None and high is not None else None
        return {"value": point, "ci_low": low, "ci_high": high, "standard_error": error}


def quantile_plan(n: int, q: float, alpha: float = 0.05) -> QuantilePlan | None:
    """The ranks behind the ``q``-quantile of ``n`` observations; None without observations.

    Example:
        ```python
        plan = quantile_plan(100, 0.5)
        assert (plan.below, plan.above, plan.lower, plan.upper) == (50, 51, 40, 61)
        ```
    """
    if n < 1:
        return None
    position = (n - 1) * q  # 0-based, NumPy's linear method
    below = math.floor(position)
    lower_index = binomial_ppf(alpha / 2.0, n, q) - 1  # 0-based, as scipy.stats.quantile_test
    upper_index = binomial_isf(alpha / 2.0, n, q)
    return QuantilePlan(
        n=n,
        q=q,
        below=below + 1,
        above=min(below + 1, n - 1) + 1,
        fraction=position - below,
        lower=lower_index + 1 if lower_index >= 0 else None,
        upper=upper_index + 1 if upper_index < n else None,
    )
