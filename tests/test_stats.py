"""The experiment statistics against SciPy and statsmodels (test-only dependencies) on generated data: the same
method must agree to 1e-9 relative."""

from __future__ import annotations

import math
import random

import pytest

from promptstream.server._stats import (
    chi_squared_sf,
    normal_sf,
    sample_ratio_p_value,
    student_t_quantile,
    student_t_sf,
    two_proportion_z_test,
    welch_interval,
    welch_t_test,
    wilson_interval,
)

scipy_stats = pytest.importorskip("scipy.stats")
proportion = pytest.importorskip("statsmodels.stats.proportion")

RELATIVE = 1e-9


def close(ours: float | None, theirs: float) -> bool:
    assert ours is not None
    return math.isclose(ours, theirs, rel_tol=RELATIVE, abs_tol=1e-300)


@pytest.mark.parametrize("seed", range(5))
def test_special_functions_match_scipy(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(200):
        z = rng.uniform(-8, 8)
        assert close(normal_sf(z), scipy_stats.norm.sf(z))
        df = rng.choice([rng.uniform(1, 5), rng.uniform(5, 200), float(rng.randint(1, 5000))])
        t = rng.uniform(-10, 10)
        assert close(student_t_sf(t, df), scipy_stats.t.sf(t, df))
        p = rng.uniform(0.001, 0.999)
        assert math.isclose(student_t_quantile(p, df), scipy_stats.t.ppf(p, df), rel_tol=1e-9, abs_tol=1e-12)
        k = rng.randint(1, 12)
        x = rng.uniform(0, 60)
        assert close(chi_squared_sf(x, k), scipy_stats.chi2.sf(x, k))


@pytest.mark.parametrize("seed", range(5))
def test_wilson_interval_matches_statsmodels(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(300):
        trials = rng.randint(1, 100_000)
        successes = rng.randint(0, trials)
        low, high = wilson_interval(successes, trials)
        their_low, their_high = proportion.proportion_confint(successes, trials, alpha=0.05, method="wilson")
        assert math.isclose(low, their_low, rel_tol=RELATIVE, abs_tol=1e-15)
        assert math.isclose(high, their_high, rel_tol=RELATIVE, abs_tol=1e-15)


@pytest.mark.parametrize("seed", range(5))
def test_two_proportion_z_test_matches_statsmodels(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(300):
        trials_a, trials_b = rng.randint(20, 50_000), rng.randint(20, 50_000)
        base = rng.uniform(0.01, 0.9)
        successes_a = round(trials_a * base)
        successes_b = round(trials_b * min(0.99, base * rng.uniform(0.8, 1.25)))
        _, theirs = proportion.proportions_ztest([successes_b, successes_a], [trials_b, trials_a])
        assert close(two_proportion_z_test(successes_a, trials_a, successes_b, trials_b), theirs)


@pytest.mark.parametrize("seed", range(5))
def test_welch_test_and_interval_match_scipy(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(100):
        a = [rng.gauss(3.5, rng.uniform(0.2, 2)) for _ in range(rng.randint(2, 400))]
        b = [rng.gauss(3.6, rng.uniform(0.2, 2)) for _ in range(rng.randint(2, 400))]
        theirs = scipy_stats.ttest_ind(b, a, equal_var=False).pvalue
        assert close(welch_t_test(a, b), theirs)
        interval = welch_interval(a)
        assert interval is not None
        their_low, their_high = scipy_stats.t.interval(0.95, len(a) - 1, loc=sum(a) / len(a), scale=scipy_stats.sem(a))
        assert math.isclose(interval[0], their_low, rel_tol=RELATIVE)
        assert math.isclose(interval[1], their_high, rel_tol=RELATIVE)


@pytest.mark.parametrize("seed", range(5))
def test_sample_ratio_check_matches_scipy_chisquare(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(200):
        weights = [rng.uniform(0.1, 3) for _ in range(rng.randint(2, 5))]
        counts = [rng.randint(0, 5000) for _ in weights]
        if sum(counts) == 0:
            continue
        expected = [sum(counts) * w / sum(weights) for w in weights]
        theirs = scipy_stats.chisquare(counts, expected).pvalue
        assert close(sample_ratio_p_value(counts, weights), theirs)


def test_degenerate_inputs_give_none_not_nonsense() -> None:
    assert two_proportion_z_test(0, 0, 5, 10) is None
    assert two_proportion_z_test(10, 10, 20, 20) is None  # both 100%: no variance, no test
    assert welch_t_test([1.0], [1.0, 2.0]) is None
    assert welch_t_test([2.0, 2.0], [2.0, 2.0]) is None
    assert welch_interval([1.0]) is None
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert sample_ratio_p_value([0, 0], [1, 1]) is None
    assert sample_ratio_p_value([5, 0], [1, 0]) is None  # one live variant: nothing to compare
