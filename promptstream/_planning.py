"""How many users an experiment needs, before it starts: a pure function the clients and the CLI
(``promptstream experiments plan``) share. The formulas are in docs/experiments.md, "Planning".

The always-valid figure uses the same confidence sequence as the server's results (Waudby-Smith et al. 2024, tuned
at ``TUNING_SAMPLE`` observations); the SDK never imports the server, so the three lines of its boundary are
repeated here, and tests/test_sequential.py checks both agree.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import msgspec

from ._errors import InvalidArgumentError

__all__ = ["SampleSizePlan", "plan_sample_size"]

TUNING_SAMPLE = 5000  # must match promptstream/server/_sequential.py
MAX_USERS = 1e12  # per variant: beyond this a plan is not a plan, and the search would lose precision
_NORMAL = NormalDist()


class SampleSizePlan(msgspec.Struct, frozen=True, kw_only=True):
    """Users per variant for a conversion-style experiment (see ``plan_sample_size``).

    Example:
        ```python
        plan = plan_sample_size(0.10, 0.02)
        print(plan.users_per_variant, plan.fixed_horizon_users_per_variant)
        ```
    """

    baseline_rate: float
    """The control's conversion rate the plan assumes."""
    target_rate: float
    """``baseline_rate`` plus the minimum detectable effect."""
    alpha: float
    """The false-positive rate allowed."""
    power: float
    """The chance to detect an effect of that size."""
    variants: int
    """Variants including the control."""
    users_per_variant: int
    """Users per variant for the always-valid (peeking-safe) rule to ship with probability ``power`` by then."""
    total_users: int
    """``users_per_variant`` times ``variants``."""
    fixed_horizon_users_per_variant: int
    """Users per variant for a fixed-horizon z-test read once, at exactly that size."""


def _check_fraction(name: str, value: object, low_open: float = 0.0, high_open: float = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low_open < value < high_open:
        raise InvalidArgumentError(name, f"must be a number strictly between {low_open:g} and {high_open:g}")
    return float(value)


def _boundary(observations: float, level: float, tuned_for: float) -> float:
    """The always-valid boundary in z units at ``observations`` (both arms) at ``level``, with the mixing scale
    tuned for ``tuned_for`` (the server tunes for the family's alpha and Holm-adjusts the p-values)."""
    log_term = -2.0 * math.log(tuned_for)
    rho2 = (log_term + math.log(log_term + 1.0)) / TUNING_SAMPLE
    scaled = observations * rho2
    return math.sqrt(2.0 * (scaled + 1.0) / scaled * math.log(math.sqrt(scaled + 1.0) / level))


def plan_sample_size(
    baseline_rate: float,
    minimum_detectable_effect: float,
    *,
    relative: bool = False,
    alpha: float = 0.05,
    power: float = 0.8,
    variants: int = 2,
) -> SampleSizePlan:
    """Users per variant to detect ``minimum_detectable_effect`` over ``baseline_rate``.

    ``minimum_detectable_effect`` is absolute (0.02 is two points) unless ``relative`` (0.2 is +20%). With more than
    two variants, alpha is split over the comparisons with the control (Bonferroni, which Holm never needs more
    than). Raises ``InvalidArgumentError`` for a rate outside (0, 1), alpha outside (0, 0.5], power outside
    [0.5, 1), variants outside 2..100, or an effect too small to detect with 10**12 users per variant.

    Example:
        ```python
        plan = plan_sample_size(0.10, 0.02)  # 10% baseline, detect +2 points
        print(f"{plan.users_per_variant:,} users per variant ({plan.fixed_horizon_users_per_variant:,} if read once)")
        ```
    """
    baseline = _check_fraction("baseline_rate", baseline_rate)
    alpha = _check_fraction("alpha", alpha, high_open=0.5 + 1e-12)
    power = _check_fraction("power", power, low_open=0.5 - 1e-12)
    if isinstance(variants, bool) or not isinstance(variants, int) or not 2 <= variants <= 100:
        raise InvalidArgumentError("variants", "must be an int from 2 to 100")
    if isinstance(minimum_detectable_effect, bool) or not isinstance(minimum_detectable_effect, int | float):
        raise InvalidArgumentError("minimum_detectable_effect", "must be a number")
    target = math.nan
    if abs(minimum_detectable_effect) < 1e6:  # also keeps a 400-digit int away from float()
        effect = float(minimum_detectable_effect) * (baseline if relative else 1.0)
        target = baseline + effect
    if not 0.0 < target < 1.0 or target == baseline:
        raise InvalidArgumentError(
            "minimum_detectable_effect", "must be non-zero and keep the target rate strictly between 0 and 1"
        )
    effect = target - baseline
    per_comparison_alpha = alpha / (variants - 1)
    spread = baseline * (1 - baseline) + target * (1 - target)  # n * Var(p_b - p_a) with n users a side
    z_power = _NORMAL.inv_cdf(power)
    # -inv_cdf(a/2) rather than inv_cdf(1 - a/2): 1 - a/2 rounds to 1.0 for a tiny alpha
    fixed = (-_NORMAL.inv_cdf(per_comparison_alpha / 2) + z_power) ** 2 * spread / effect**2
    if not fixed <= MAX_USERS:
        raise InvalidArgumentError(
            "minimum_detectable_effect", f"too small to detect with at most {MAX_USERS:.0e} users per variant"
        )

    def enough(per_variant: float) -> bool:
        z = abs(effect) / math.sqrt(spread / per_variant)
        return z >= _boundary(2 * per_variant, per_comparison_alpha, alpha) + z_power

    low, high = 1.0, max(2.0, fixed)
    while not enough(high):
        high *= 2.0
        if high > 4 * MAX_USERS:
            raise InvalidArgumentError(
                "minimum_detectable_effect", f"too small to detect with at most {MAX_USERS:.0e} users per variant"
            )
    while high - low > 0.5:
        middle = (low + high) / 2
        low, high = (low, middle) if enough(middle) else (middle, high)
    users = math.ceil(high)
    return SampleSizePlan(
        baseline_rate=baseline,
        target_rate=target,
        alpha=alpha,
        power=power,
        variants=variants,
        users_per_variant=users,
        total_users=users * variants,
        fixed_horizon_users_per_variant=math.ceil(fixed),
    )
