"""Simulated experiments read through the real results computation (``compute_results``, the function behind
``GET /v1/experiments/{id}/results``) after every batch of users, as a team that checks its dashboard daily would.

Used by tests/test_sequential.py (a short run in the default suite, the long one marked ``slow``) and to produce
the figures and the plot in docs/experiments.md::

    python -m tests.stats_simulation --experiments 1000 --users 5000 --plot docs/experiments-peeking.png
"""

from __future__ import annotations

import argparse
import math
import random
from dataclasses import dataclass, field
from typing import Any

from promptstream.server._results import compute_results

EXPERIMENT = {
    "experiment_id": "simulated",
    "prompt_id": "simulated",
    "variants": [{"version": 1, "weight": 1.0}, {"version": 2, "weight": 1.0}],
}
DIFFERENT = ("ship", "keep_control")  # the rule declared a difference on the primary metric


@dataclass
class Outcome:
    """One simulated experiment: where (in users) each rule first declared a difference, if it did."""

    always_valid_stop: int | None = None
    always_valid_action: str | None = None
    fixed_horizon_stop: int | None = None
    fixed_horizon_final: bool = False  # the fixed-horizon test at the last look only, as pre-registered
    looks: list[tuple[int, dict[str, Any]]] = field(default_factory=list)


def simulate(
    rng: random.Random,
    control_rate: float,
    treatment_rate: float,
    users: int,
    batch: int,
    keep_looks: bool = False,
) -> Outcome:
    """Users arrive one by one (50/50 assignment, one run each, converting at the variant's true rate); the results
    are read after every ``batch`` users. Reading stops at the always-valid decision only when ``keep_looks`` is
    False and the fixed-horizon rule has fired too (both are recorded)."""
    outcome = Outcome()
    runs: list[tuple[str, str, str | None]] = []
    events: list[tuple[Any, ...]] = []
    for user in range(1, users + 1):
        variant = "v1" if rng.random() < 0.5 else "v2"
        run_id = f"r{user}"
        runs.append((run_id, variant, f"u{user}"))
        if rng.random() < (control_rate if variant == "v1" else treatment_rate):
            events.append((run_id, "conversion", None, None, None, "2024-01-01T00:00:00Z", f"e{user}"))
        if user % batch and user != users:
            continue
        results = compute_results(EXPERIMENT, runs, events)
        treatment = next(v for v in results["variants"] if v["variant"] == "v2")
        p_fixed = treatment["conversion"]["per_user"]["p_value"]
        if outcome.fixed_horizon_stop is None and p_fixed is not None and p_fixed < 0.05:
            outcome.fixed_horizon_stop = user
        if user == users:
            outcome.fixed_horizon_final = p_fixed is not None and p_fixed < 0.05
        action = results["decision"]["action"]
        if keep_looks:
            outcome.looks.append((user, results))
        if outcome.always_valid_stop is None and action in DIFFERENT:
            outcome.always_valid_stop, outcome.always_valid_action = user, action
        if not keep_looks and outcome.always_valid_stop is not None and outcome.fixed_horizon_stop is not None:
            break
    return outcome


def clopper_pearson(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """The exact binomial interval, by bisection on the binomial CDF (no SciPy needed)."""

    def cdf(k: int, p: float) -> float:
        return math.fsum(math.comb(trials, i) * p**i * (1 - p) ** (trials - i) for i in range(k + 1))

    tail = (1 - confidence) / 2

    def solve(target: Any, low: float, high: float) -> float:
        for _ in range(60):
            middle = (low + high) / 2
            low, high = (middle, high) if target(middle) else (low, middle)
        return (low + high) / 2

    lower = 0.0 if successes == 0 else solve(lambda p: 1 - cdf(successes - 1, p) < tail, 0.0, 1.0)
    upper = 1.0 if successes == trials else solve(lambda p: cdf(successes, p) > tail, 0.0, 1.0)
    return lower, upper


@dataclass
class Summary:
    experiments: int
    always_valid_rejections: int
    fixed_horizon_peeking_rejections: int
    fixed_horizon_final_rejections: int
    mean_stop: float | None  # users at the always-valid stop, among experiments that stopped
    wrong_direction: int  # "ship" in an A/A, or "keep_control" in an A/B with a positive lift: sign errors

    def rate(self, count: int) -> tuple[float, float, float]:
        low, high = clopper_pearson(count, self.experiments)
        return count / self.experiments, low, high


def run(experiments: int, control_rate: float, treatment_rate: float, users: int, batch: int, seed: int) -> Summary:
    rng = random.Random(seed)
    outcomes = [simulate(rng, control_rate, treatment_rate, users, batch) for _ in range(experiments)]
    stops = [o.always_valid_stop for o in outcomes if o.always_valid_stop is not None]
    wrong = "keep_control" if treatment_rate > control_rate else "ship"
    return Summary(
        experiments=experiments,
        always_valid_rejections=len(stops),
        fixed_horizon_peeking_rejections=sum(o.fixed_horizon_stop is not None for o in outcomes),
        fixed_horizon_final_rejections=sum(o.fixed_horizon_final for o in outcomes),
        mean_stop=sum(stops) / len(stops) if stops else None,
        wrong_direction=sum(o.always_valid_action == wrong for o in outcomes) if treatment_rate != control_rate else 0,
    )


def _report(name: str, summary: Summary) -> None:
    def show(label: str, count: int) -> str:
        rate, low, high = summary.rate(count)
        return f"{label} {rate:.1%} [{low:.1%}, {high:.1%}]"

    print(
        f"{name}: {summary.experiments} experiments; "
        + "; ".join(
            (
                show("always-valid decision", summary.always_valid_rejections),
                show("fixed-horizon p<0.05 at any look", summary.fixed_horizon_peeking_rejections),
                show("fixed-horizon at the last look", summary.fixed_horizon_final_rejections),
            )
        )
        + (f"; mean users at the always-valid stop {summary.mean_stop:,.0f}" if summary.mean_stop else "")
    )


def _plot(path: str, seed: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outcome = simulate(random.Random(seed), 0.10, 0.12, 12_000, 200, keep_looks=True)
    xs, av_low, av_high, fx_low, fx_high, lift = [], [], [], [], [], []
    for users, results in outcome.looks:
        figure = next(v for v in results["variants"] if v["variant"] == "v2")["conversion"]["per_user"]
        if figure["always_valid"] is None or figure["always_valid"]["ci_low"] is None:
            continue
        xs.append(users)
        lift.append(figure["lift"] * 100)
        av_low.append(figure["always_valid"]["ci_low"] * 100)
        av_high.append(figure["always_valid"]["ci_high"] * 100)
        fx_low.append(figure["fixed_horizon"]["ci_low"] * 100)
        fx_high.append(figure["fixed_horizon"]["ci_high"] * 100)
    fig, axis = plt.subplots(figsize=(8, 4.5))
    axis.fill_between(xs, av_low, av_high, color="#2b6cb0", alpha=0.25, label="always-valid 95% (confidence sequence)")
    axis.plot(xs, fx_low, color="#dd6b20", linestyle="--", label="fixed-horizon 95% (valid at one pre-set look)")
    axis.plot(xs, fx_high, color="#dd6b20", linestyle="--")
    axis.plot(xs, lift, color="black", linewidth=1, label="observed lift")
    axis.axhline(2.0, color="green", linewidth=0.8, label="true lift (+2 pts)")
    axis.axhline(0.0, color="grey", linewidth=0.8)
    if outcome.always_valid_stop:
        axis.axvline(outcome.always_valid_stop, color="#2b6cb0", linewidth=0.8, linestyle=":")
        axis.annotate(f"decision: {outcome.always_valid_action}", (outcome.always_valid_stop, max(av_high) * 0.8))
    axis.set_xlabel("users so far")
    axis.set_ylabel("lift in conversion per user (points)")
    axis.set_title("A/B, 10% vs 12%: the confidence sequence narrows; read it whenever you like")
    axis.legend(loc="upper right", fontsize=8)
    axis.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--experiments", type=int, default=1000)
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--ab-experiments", type=int, default=500)
    parser.add_argument("--ab-users", type=int, default=20_000)
    parser.add_argument("--ab-batch", type=int, default=500)
    parser.add_argument("--plot")
    args = parser.parse_args()
    if args.experiments:
        _report("A/A 10% vs 10%", run(args.experiments, 0.10, 0.10, args.users, args.batch, args.seed))
    if args.ab_experiments:
        _report("A/B 10% vs 12%", run(args.ab_experiments, 0.10, 0.12, args.ab_users, args.ab_batch, args.seed + 1))
    if args.plot:
        _plot(args.plot, args.seed)


if __name__ == "__main__":
    main()
