"""The statistics behind latency, tokens and cost (docs/experiments.md, "Latency, tokens and cost"), each against an
independent implementation on generated data: quantiles against NumPy, their order-statistic intervals against
``scipy.stats.quantile_test``, the binomial quantiles against ``scipy.stats.binom``, and the delta-method variance of
a ratio against NumPy's own computation and a seeded bootstrap."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptstream.server._aggregates import aggregate_rows
from promptstream.server._quantiles import binomial_isf, binomial_ppf, quantile_plan
from promptstream.server._stats import RatioSummary, Summary

np = pytest.importorskip("numpy")
scipy_stats = pytest.importorskip("scipy.stats")

latencies = st.lists(
    st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False), min_size=1, max_size=400
)


@settings(max_examples=150, deadline=None)
@given(values=latencies, q=st.sampled_from([0.5, 0.95, 0.05, 0.25, 0.99]))
def test_quantile_and_its_interval_match_numpy_and_scipy(values: list[float], q: float) -> None:
    plan = quantile_plan(len(values), q)
    assert plan is not None
    ordered = sorted(values)
    figure = plan.estimate({rank: ordered[rank - 1] for rank in plan.ranks()})
    assert figure["value"] == pytest.approx(float(np.quantile(values, q)), rel=1e-12, abs=1e-9)
    reference = scipy_stats.quantile_test(values, q=float(np.quantile(values, q)), p=q).confidence_interval(0.95)
    for ours, theirs in ((figure["ci_low"], reference.low), (figure["ci_high"], reference.high)):
        if math.isnan(theirs):
            assert ours is None  # too few observations for this end: SciPy says NaN, we say None
        else:
            assert ours == theirs


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=20_000),
    p=st.floats(min_value=0.01, max_value=0.99),
    q=st.sampled_from([0.025, 0.05, 0.95, 0.975]),
)
def test_binomial_quantiles_match_scipy(n: int, p: float, q: float) -> None:
    # The levels the intervals use. Not 0.5: Binomial(n, 1/2)'s CDF is exactly 1/2 at (n - 1)/2, and which side of
    # that tie a quantile lands on is the rounding of each library's CDF (SciPy's own differs between n = 5 and 35).
    assert binomial_ppf(q, n, p) == int(scipy_stats.binom.ppf(q, n, p))
    assert binomial_isf(q, n, p) == int(scipy_stats.binom.isf(q, n, p))


def test_a_quantile_interval_covers_the_true_quantile_at_least_95_percent_of_the_time() -> None:
    rng = random.Random(11)
    true_median = math.log(2.0)  # of Exp(1)
    trials, covered = 2000, 0
    for _ in range(trials):
        values = sorted(rng.expovariate(1.0) for _ in range(60))
        plan = quantile_plan(len(values), 0.5)
        assert plan is not None
        figure = plan.estimate({rank: values[rank - 1] for rank in plan.ranks()})
        covered += figure["ci_low"] <= true_median <= figure["ci_high"]
    assert covered / trials >= 0.95 - 3 * math.sqrt(0.95 * 0.05 / trials)


def _summary(values: list[float], converted: list[float]) -> RatioSummary:
    y, x = np.asarray(values), np.asarray(converted)
    return RatioSummary(
        len(values),
        float(y.mean()),
        float(x.mean()),
        float(((y - y.mean()) ** 2).sum()),
        float(((x - x.mean()) ** 2).sum()),
        float(((y - y.mean()) * (x - x.mean())).sum()),
    )


@settings(max_examples=100, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.floats(min_value=0.0, max_value=1e4, allow_nan=False), st.booleans()), min_size=2, max_size=300
    )
)
def test_the_ratio_variance_is_the_delta_method_computed_by_numpy(rows: list[tuple[float, bool]]) -> None:
    values, converted = [r[0] for r in rows], [float(r[1]) for r in rows]
    summary = _summary(values, converted)
    if sum(converted) == 0:
        assert summary.ratio is None and summary.variance is None
        return
    y, x = np.asarray(values), np.asarray(converted)
    covariance = np.cov(y, x, ddof=1)  # the textbook delta method, from NumPy's covariance matrix
    ratio = y.mean() / x.mean()
    gradient = np.array([1.0 / x.mean(), -y.mean() / x.mean() ** 2])
    expected = float(gradient @ covariance @ gradient) / len(rows)
    assert summary.ratio == pytest.approx(float(ratio), rel=1e-9)
    # both sides round: a variance that is mathematically 0 comes out as noise of the size of the terms it cancels
    rounding = 1e-12 * (1.0 + max(values) ** 2)
    assert summary.variance == pytest.approx(max(expected, 0.0), rel=1e-6, abs=rounding)


def test_the_delta_method_agrees_with_a_bootstrap() -> None:
    generator = np.random.default_rng(5)
    n = 4000
    converted = (generator.random(n) < 0.2).astype(float)
    cost = generator.gamma(2.0, 0.001, n) * (1 + converted)  # converting runs cost more
    summary = _summary(list(cost), list(converted))
    draws = generator.integers(0, n, size=(2000, n))
    bootstrap = cost[draws].sum(axis=1) / converted[draws].sum(axis=1)
    assert summary.variance is not None
    # 2,000 resamples estimate the standard error within about 2% (1/sqrt(2B)); the delta method is asymptotic
    assert math.sqrt(summary.variance) == pytest.approx(float(bootstrap.std(ddof=1)), rel=0.08)


def test_summaries_in_memory_match_the_t_interval_and_welch_test_of_scipy() -> None:
    rng = random.Random(3)
    runs = [
        (f"r{i}", "v1" if i % 2 else "v2", None, rng.uniform(100, 900), rng.randint(5, 80), 7, None) for i in range(301)
    ]
    aggregates = aggregate_rows(runs, [])
    v1, v2 = aggregates.variants["v1"].usage["input_tokens"], aggregates.variants["v2"].usage["input_tokens"]
    tokens = {name: [float(r[4]) for r in runs if r[1] == name] for name in ("v1", "v2")}
    assert v1.numerator == pytest.approx(float(np.mean(tokens["v1"])))
    as_summary = Summary(v1.n, v1.numerator, v1.numerator_deviations)
    assert as_summary.variance == pytest.approx(float(np.var(tokens["v1"], ddof=1)))
    assert v2.n == len(tokens["v2"])
    assert aggregates.variants["v1"].usage["cost_usd"].n == 0  # no cost recorded: no figure, not a zero
