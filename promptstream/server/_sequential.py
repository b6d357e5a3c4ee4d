"""Always-valid ("peeking-safe") inference on a difference between a variant and the control, and Holm's step-down
adjustment across several such comparisons. Method and reasons: docs/experiments.md, "Reading results at any time".

The confidence sequence is the two-sided asymptotic confidence sequence of Waudby-Smith, Arnold, Wu, Wang and Ramdas,
"Time-uniform central limit theory and asymptotic confidence sequences" (Annals of Statistics, 2024;
arXiv:2103.06476), with its Gaussian-mixture boundary tuned to be tightest at ``TUNING_SAMPLE`` observations. It is
the one GrowthBook's ``gbstats`` implements (``SequentialTwoSidedTTest``), which tests/test_sequential.py uses as the
independent reference. The always-valid p-value is the smallest alpha whose sequence excludes a zero difference; with
the Gaussian mixture it is the reciprocal of the mixture likelihood ratio of Johari, Koomen, Pekelis and Walsh, "Always
valid inference: continuous monitoring of A/B tests" (Operations Research, 2022), so ``p < alpha`` exactly when the
interval excludes 0. Both hold uniformly over every time the results are read: reading them after each user costs
nothing in error rate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["ALPHA", "TUNING_SAMPLE", "always_valid_interval", "always_valid_p_value", "holm", "mixture_rho"]

ALPHA = 0.05
TUNING_SAMPLE = 5000  # observations in both arms where the sequence is tightest (gbstats' default, documented)


def mixture_rho(alpha: float = ALPHA, tuning_sample: float = TUNING_SAMPLE) -> float:
    """The mixing scale that minimises the boundary's width at ``tuning_sample`` (Waudby-Smith et al., eq. (19))."""
    log_term = -2.0 * math.log(alpha)
    return math.sqrt((log_term + math.log(log_term + 1.0)) / tuning_sample)


def always_valid_interval(
    difference: float, variance: float, observations: int, alpha: float = ALPHA, tuning_sample: float = TUNING_SAMPLE
) -> tuple[float, float] | None:
    """A (1 - alpha) confidence sequence for a difference, at the current look.

    ``variance`` is the estimated variance of ``difference`` (e.g. p_a(1-p_a)/n_a + p_b(1-p_b)/n_b) and
    ``observations`` the number of units in both arms. None when the variance is not positive and finite.

    Example:
        ```python
        low, high = always_valid_interval(0.02, 0.0001, 2000)
        ```
    """
    if observations < 1 or not (variance > 0.0 and math.isfinite(variance)) or not math.isfinite(difference):
        return None
    rho2 = mixture_rho(alpha, tuning_sample) ** 2
    n = float(observations)
    per_unit_variance = variance * n
    half = math.sqrt(per_unit_variance) * math.sqrt(
        2.0 * (n * rho2 + 1.0) / (n * n * rho2) * math.log(math.sqrt(n * rho2 + 1.0) / alpha)
    )
    return difference - half, difference + half


def always_valid_p_value(
    difference: float, variance: float, observations: int, tuning_sample: float = TUNING_SAMPLE
) -> float | None:
    """The always-valid p-value of "no difference": the smallest alpha whose sequence (with the mixing scale tuned
    for ``ALPHA``) excludes 0. None when the variance is not positive and finite.

    Example:
        ```python
        p = always_valid_p_value(0.02, 0.0001, 2000)
        ```
    """
    if observations < 1 or not (variance > 0.0 and math.isfinite(variance)) or not math.isfinite(difference):
        return None
    rho2 = mixture_rho(ALPHA, tuning_sample) ** 2
    scaled = observations * rho2
    z2 = difference * difference / variance
    log_p = 0.5 * math.log(scaled + 1.0) - z2 * scaled / (2.0 * (scaled + 1.0))
    return 1.0 if log_p >= 0.0 else math.exp(log_p)


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (family-wise error at most alpha when each is compared with alpha).

    A missing p-value (an undefined test) stays None and still counts in the family, which is conservative.

    Example:
        ```python
        assert holm([0.01, 0.04, None]) == [0.03, 0.08, None]
        ```
    """
    family = len(p_values)
    order = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    adjusted: list[float | None] = [None] * family
    running = 0.0
    for rank, (p, index) in enumerate(order):
        running = max(running, min(1.0, (family - rank) * p))
        adjusted[index] = running
    return adjusted
