"""The statistics behind experiment results, in plain Python (the server needs no SciPy): Wilson intervals,
two-proportion z-tests, Welch's t-test and interval, and a chi-squared goodness-of-fit for sample-ratio mismatch.
Formulas are in docs/experiments.md; tests/test_stats.py checks every function against SciPy and statsmodels.

The special functions are the textbook ones: the normal CDF from erfc, Student's t CDF from the regularized
incomplete beta function (continued fraction, modified Lentz), the chi-squared survival function from the
regularized upper incomplete gamma function (series or continued fraction), quantiles by bisection on the CDF.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "Z_95",
    "RatioSummary",
    "Summary",
    "chi_squared_sf",
    "mean_and_variance",
    "normal_sf",
    "proportion_difference_interval",
    "regularized_incomplete_beta",
    "sample_ratio_p_value",
    "student_t_quantile",
    "student_t_sf",
    "summary_interval",
    "two_proportion_z_test",
    "welch_difference_interval",
    "welch_interval",
    "welch_t_test",
    "wilson_interval",
]

Z_95 = 1.959963984540054  # the 0.975 quantile of the standard normal
_EPSILON = 1e-15
_TINY = 1e-300
_MAX_ITERATIONS = 10_000


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    # Numerical Recipes' betacf, evaluated with the modified Lentz method
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    result = d
    for m in range(1, _MAX_ITERATIONS):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > _TINY else _TINY
            delta = c * d
            result *= delta
        if abs(delta - 1.0) < _EPSILON:
            return result
    raise ArithmeticError("incomplete beta did not converge")


def regularized_incomplete_beta(a: float, b: float, x: float, complement: float | None = None) -> float:
    """I_x(a, b). ``complement`` is 1 - x when the caller can compute it without cancellation (x close to 1)."""
    y = 1.0 - x if complement is None else complement
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(y)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, y) / b


def student_t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with ``df`` degrees of freedom (df may be fractional, as Welch's is)."""
    # near t = 0, x = df / (df + t^2) is within a hair of 1: pass 1 - x as t^2 / (df + t^2), not as 1 - x
    tail = 0.5 * regularized_incomplete_beta(df / 2.0, 0.5, df / (df + t * t), t * t / (df + t * t))
    return tail if t >= 0 else 1.0 - tail


def student_t_quantile(p: float, df: float) -> float:
    """The t with P(T <= t) = p, by bisection (monotone CDF; 200 halvings reach double precision)."""
    if not 0.0 < p < 1.0:
        raise ValueError("p must be in (0, 1)")
    low, high = -1.0, 1.0
    while 1.0 - student_t_sf(low, df) > p:
        low *= 2.0
    while 1.0 - student_t_sf(high, df) < p:
        high *= 2.0
    for _ in range(200):
        middle = (low + high) / 2.0
        if 1.0 - student_t_sf(middle, df) < p:
            low = middle
        else:
            high = middle
        if high - low <= 1e-15 * max(1.0, abs(middle)):
            break
    return (low + high) / 2.0


def _upper_gamma_regularized(s: float, x: float) -> float:
    """Q(s, x) = Γ(s, x) / Γ(s)."""
    if x <= 0.0:
        return 1.0
    log_front = s * math.log(x) - x - math.lgamma(s)
    if x < s + 1.0:  # the series for P(s, x) converges fast here
        term = total = 1.0 / s
        n = s
        for _ in range(_MAX_ITERATIONS):
            n += 1.0
            term *= x / n
            total += term
            if abs(term) < abs(total) * _EPSILON:
                return 1.0 - total * math.exp(log_front)
        raise ArithmeticError("incomplete gamma series did not converge")
    b = x + 1.0 - s  # continued fraction for Q(s, x), modified Lentz
    c, d = 1.0 / _TINY, 1.0 / b
    result = d
    for i in range(1, _MAX_ITERATIONS):
        numerator = -i * (i - s)
        b += 2.0
        d = numerator * d + b
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = b + numerator / c
        c = c if abs(c) > _TINY else _TINY
        delta = c * d
        result *= delta
        if abs(delta - 1.0) < _EPSILON:
            return math.exp(log_front) * result
    raise ArithmeticError("incomplete gamma fraction did not converge")


def chi_squared_sf(x: float, df: int) -> float:
    """P(X > x) for a chi-squared X with ``df`` degrees of freedom."""
    return _upper_gamma_regularized(df / 2.0, x / 2.0)


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval for a proportion (no continuity correction); (0, 1) with no trials."""
    if trials == 0:
        return 0.0, 1.0
    share = successes / trials
    denominator = 1.0 + z * z / trials
    centre = (share + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(share * (1.0 - share) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def two_proportion_z_test(successes_a: int, trials_a: int, successes_b: int, trials_b: int) -> float | None:
    """Two-sided p-value of H0: both proportions are equal (pooled z-test); None when it is undefined."""
    if trials_a == 0 or trials_b == 0:
        return None
    pooled = (successes_a + successes_b) / (trials_a + trials_b)
    variance = pooled * (1.0 - pooled) * (1.0 / trials_a + 1.0 / trials_b)
    if variance == 0.0:
        return None  # both all-or-nothing and equal: no evidence either way
    z = (successes_b / trials_b - successes_a / trials_a) / math.sqrt(variance)
    return min(1.0, 2.0 * normal_sf(abs(z)))


def mean_and_variance(values: Sequence[float]) -> tuple[float, float]:
    """The mean and the unbiased sample variance (0 for a single value)."""
    mean = math.fsum(values) / len(values)
    variance = math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
    return mean, variance


@dataclass(frozen=True, slots=True)
class Summary:
    """What a mean's statistics need from a sample: its size, mean and sum of squared deviations from the mean (so
    a database can compute it with two passes, and no sum of squares loses the variance to cancellation)."""

    n: int
    mean: float
    squared_deviations: float

    @property
    def variance(self) -> float:
        """The unbiased sample variance (0 for a single value). Deviations within the rounding error of the mean
        are 0: three stored 0.1s average to 0.1 + 2e-17 in a database's plain sum, which is no spread at all."""
        noise = self.n * (4.0 * sys.float_info.epsilon * abs(self.mean)) ** 2
        if self.n < 2 or self.squared_deviations <= noise:
            return 0.0
        return self.squared_deviations / (self.n - 1)

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        if not values:
            return cls(0, 0.0, 0.0)
        mean = math.fsum(values) / len(values)
        return cls(len(values), mean, math.fsum((v - mean) ** 2 for v in values))


def welch_interval(values: Sequence[float]) -> tuple[float, float] | None:
    """The 95% t-interval for a mean (df = n - 1); None with fewer than two values."""
    return summary_interval(Summary.of(values))


def summary_interval(summary: Summary) -> tuple[float, float] | None:
    """The 95% t-interval for a mean from its summary; None with fewer than two values."""
    if summary.n < 2:
        return None
    half = student_t_quantile(0.975, summary.n - 1) * math.sqrt(summary.variance / summary.n)
    return summary.mean - half, summary.mean + half


def _welch(a: Sequence[float] | Summary, b: Sequence[float] | Summary) -> tuple[float, float, float] | None:
    """mean(b) - mean(a), its standard error and the Welch-Satterthwaite degrees of freedom; None with fewer than two
    values a side or no variance at all."""
    a = a if isinstance(a, Summary) else Summary.of(a)
    b = b if isinstance(b, Summary) else Summary.of(b)
    if a.n < 2 or b.n < 2:
        return None
    error_a, error_b = a.variance / a.n, b.variance / b.n
    total = error_a + error_b
    if total == 0.0:
        return None
    # Written in each side's share of the error: the squares of two tiny errors (1e-177) would underflow to 0 and
    # divide by zero; shares lie in [0, 1] and sum to 1, so the denominator never vanishes.
    share_a, share_b = error_a / total, error_b / total
    df = 1.0 / (share_a**2 / (a.n - 1) + share_b**2 / (b.n - 1))
    return b.mean - a.mean, math.sqrt(total), df


def welch_t_test(a: Sequence[float] | Summary, b: Sequence[float] | Summary) -> float | None:
    """Two-sided p-value of Welch's t-test (unequal variances); None when it is undefined."""
    welch = _welch(a, b)
    if welch is None:
        return None
    difference, error, df = welch
    return min(1.0, 2.0 * student_t_sf(abs(difference / error), df))


def sample_ratio_p_value(observed: Sequence[int], weights: Sequence[float]) -> float | None:
    """Chi-squared goodness-of-fit of counts per variant against the configured weights (sample-ratio mismatch)."""
    pairs = [(count, weight) for count, weight in zip(observed, weights, strict=True) if 0 < weight < math.inf]
    total = sum(count for count, _ in pairs)
    if total == 0 or len(pairs) < 2:
        return None
    largest = max(weight for _, weight in pairs)  # weights of 1e308 in an old database: scale before summing
    pairs = [(count, weight / largest) for count, weight in pairs if weight / largest > 0.0]
    total = sum(count for count, _ in pairs)
    if total == 0 or len(pairs) < 2:
        return None
    weight_sum = math.fsum(weight for _, weight in pairs)
    statistic = 0.0
    for count, weight in pairs:
        expected = total * weight / weight_sum
        statistic += (count - expected) * ((count - expected) / expected)  # no ** 2: it raises on overflow
    if not math.isfinite(statistic):
        return 0.0  # a weight so small that any traffic at all is infinitely unlikely
    return chi_squared_sf(statistic, len(pairs) - 1)


def proportion_difference_interval(
    successes_a: int, trials_a: int, successes_b: int, trials_b: int, z: float = Z_95
) -> tuple[float, float] | None:
    """The 95% Wald interval (unpooled) for p_b - p_a; None without trials on either side."""
    if trials_a == 0 or trials_b == 0:
        return None
    rate_a, rate_b = successes_a / trials_a, successes_b / trials_b
    half = z * math.sqrt(rate_a * (1.0 - rate_a) / trials_a + rate_b * (1.0 - rate_b) / trials_b)
    return rate_b - rate_a - half, rate_b - rate_a + half


def welch_difference_interval(a: Sequence[float] | Summary, b: Sequence[float] | Summary) -> tuple[float, float] | None:
    """The 95% Welch interval for mean(b) - mean(a); None with fewer than two values a side or no variance."""
    welch = _welch(a, b)
    if welch is None:
        return None
    difference, error, df = welch
    half = student_t_quantile(0.975, df) * error
    return difference - half, difference + half


@dataclass(frozen=True, slots=True)
class RatioSummary:
    """A ratio of two per-run means (cost per conversion: the mean cost over the mean conversion indicator) with
    what its delta-method variance needs: the size, both means, both sums of squared deviations and the sum of
    cross deviations. Deng, Knoblich and Lu, "Applying the delta method in metric analytics" (KDD 2018)."""

    n: int
    numerator: float
    denominator: float
    numerator_deviations: float
    denominator_deviations: float
    cross_deviations: float

    @property
    def ratio(self) -> float | None:
        return self.numerator / self.denominator if self.n and self.denominator > 0.0 else None

    @property
    def variance(self) -> float | None:
        """Var(mean_y / mean_x) ~ (s_y^2 - 2 R s_xy + R^2 s_x^2) / (n mean_x^2); None without a ratio or with fewer
        than two runs."""
        ratio = self.ratio
        if ratio is None or self.n < 2:
            return None
        scale = self.n - 1
        variance_y, variance_x = self.numerator_deviations / scale, self.denominator_deviations / scale
        covariance = self.cross_deviations / scale
        spread = variance_y - 2.0 * ratio * covariance + ratio * ratio * variance_x
        result = max(0.0, spread) / (self.n * self.denominator * self.denominator)
        return result if math.isfinite(result) else None
