"""``promptstream demo``: a two-variant experiment end to end, in seconds, with nothing to set up.

A reference server starts in-process on a free loopback port with a temporary database; a prompt gets two versions
and a 50/50 experiment; simulated users (seeded) run it through the real SDK over HTTP and click, convert, rate and
give feedback with different true rates per variant; then the server's results and the SDK's own delivery figures
are printed. The results are read after every 5 % of the users, as a team watching a dashboard would: each look
prints the server's peeking-safe decision, and the demo says when that rule would have stopped the experiment and
what it decided. ``--plot`` draws the always-valid confidence sequence on the lift narrowing as users arrive, against
the fixed-horizon interval (valid only at one pre-set look).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from .._client import PromptStreamClient
from .._results_models import ExperimentResults
from ._common import CommandError, server_module
from ._render import render_results

API_KEY = "ps_demo_key"
LOOKS = 20  # results read this many times as users arrive
PLOT_EXTRA_HINT = "--plot needs matplotlib: pip install 'promptstream[plot]'"


class Behaviour:
    """One variant's true rates: what the experiment is supposed to discover."""

    def __init__(self, click: float, convert_after_click: float, thumbs_up: float, rating: float, seconds: float):
        self.click, self.convert_after_click = click, convert_after_click
        self.thumbs_up, self.rating, self.seconds = thumbs_up, rating, seconds


TRUTH = {
    "v1": Behaviour(click=0.30, convert_after_click=0.30, thumbs_up=0.60, rating=3.6, seconds=40.0),
    "v2": Behaviour(click=0.38, convert_after_click=0.38, thumbs_up=0.68, rating=3.9, seconds=46.0),
}


def _progress(total: int) -> tuple[AbstractContextManager[Any], Callable[[], None], Callable[[str], None]]:
    try:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    except ImportError:
        return nullcontext(), lambda: None, print
    progress = Progress(
        TextColumn("simulating users"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=True
    )
    task = progress.add_task("users", total=total)
    return (
        progress,
        lambda: progress.advance(task),
        lambda line: progress.console.print(line, highlight=False, soft_wrap=True),
    )


def _matplotlib_missing() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return True
    return False


def _look_line(users: int, results: ExperimentResults) -> str:
    conversion = results.variant("v2").conversion.per_user if len(results.variants) > 1 else None
    safe = conversion.always_valid if conversion is not None else None
    interval = (
        f"lift {safe.lift * 100:+.1f} pts, always-valid [{safe.ci_low * 100:+.1f}, {safe.ci_high * 100:+.1f}]"
        if safe is not None and safe.ci_low is not None and safe.ci_high is not None
        else "lift —"
    )
    fixed = conversion.p_value if conversion is not None else None
    shown = "—" if fixed is None else ("<0.001" if fixed < 0.001 else f"{fixed:.3f}")
    action = results.decision.action.replace("_", " ") if results.decision else "—"
    return f"  after {users:>6,} users: {action:<14} {interval}  (fixed-horizon p {shown})"


def cmd_demo(args: argparse.Namespace) -> int:
    if args.users < 1:
        raise CommandError("--users must be at least 1")
    if args.plot and not args.plot.lower().endswith((".png", ".svg")):
        raise CommandError("--plot writes a .png or .svg file")
    if args.plot and _matplotlib_missing():  # before the demo runs, not after
        print(f"promptstream: error: {PLOT_EXTRA_HINT}", file=sys.stderr)
        return 2
    server = server_module()
    rng = random.Random(args.seed)
    latencies: list[int] = []
    history: list[tuple[int, ExperimentResults]] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="promptstream-demo-") as tmp:
        store = server.Store(Path(tmp) / "server.sqlite3")
        with server.ServerThread(store, [API_KEY]) as running:
            project = "default"  # the project of the server's --api-key keys, which the demo's client uses
            prompt = store.create_prompt(project, "onboarding", "Welcome {{name}}! Here is how to start.")
            store.add_version(project, prompt["prompt_id"], "Hi {{name}}, you're 3 steps from your first result.")
            experiment = store.create_experiment(
                project,
                prompt["prompt_id"],
                [server.VariantSpec(1, 1.0), server.VariantSpec(2, 1.0)],
                "onboarding copy",
                experiment_id=f"demo-seed-{args.seed}",  # assignment hashes the id: the same seed, the same split
            )
            print(f"server      {running.url} (temporary database)")
            print(f"experiment  {experiment['experiment_id']}: v1 (control) vs v2, 50/50, {args.users:,} users")
            print("looks       the results as a dashboard would read them, after every 5% of the users:")
            client = PromptStreamClient(API_KEY, base_url=running.url, spool_dir=Path(tmp) / "spool")
            with client:
                bar, advance, say = _progress(args.users)
                every = max(1, args.users // LOOKS)
                with bar:
                    for user_number in range(args.users):
                        _simulate_user(client, prompt["prompt_id"], f"user-{user_number:05d}", rng, latencies)
                        advance()
                        if (user_number + 1) % every == 0 or user_number + 1 == args.users:
                            client.flush(timeout=10)
                            look = client.get_experiment_results(experiment["experiment_id"])
                            history.append((user_number + 1, look))
                            say(_look_line(user_number + 1, look))
                delivered = client.flush(timeout=30)
                results = client.get_experiment_results(experiment["experiment_id"])
                stats = client.stats()
            stored, duplicates = store.count("events"), sum(row["duplicates"] for row in store.batch_log())
            store.close()
    print(_stopping_summary(history))
    print()
    print(render_results(results))
    latencies.sort()
    print(
        f"\nSDK delivery: {stats.tracked:,} events tracked, {stored:,} stored by the server"
        f" ({stats.sent:,} acknowledged, {duplicates} duplicates, {stats.dropped} dropped,"
        f" flush {'complete' if delivered else 'timed out'})"
    )
    print(
        f"track_* latency: median {statistics.median(latencies) / 1000:.1f} µs,"
        f" p99 {latencies[int(len(latencies) * 0.99)] / 1000:.1f} µs over {len(latencies):,} calls"
        f" (the demo's server shares this process) · {time.perf_counter() - started:.1f} s in all"
    )
    if args.plot:
        _plot(history, args.plot)
        print(f"plot: {args.plot}")
    return 0 if delivered and stored == stats.tracked else 1


def _stopping_summary(history: list[tuple[int, ExperimentResults]]) -> str:
    """When the peeking-safe rule would have stopped, what it decided, and when a naive reader would have."""
    stop = next(
        ((users, r) for users, r in history if r.decision is not None and r.decision.action != "keep_running"), None
    )
    naive = next(
        (
            users
            for users, r in history
            if len(r.variants) > 1
            and (p := r.variant("v2").conversion.per_user.p_value) is not None
            and p < 0.05  # what a dashboard reader who stops at the first p < 0.05 would do
        ),
        None,
    )
    if stop is None:
        line = f"Peeking-safe rule: no stop within {history[-1][0]:,} users (keep running)" if history else ""
    else:
        users, results = stop
        assert results.decision is not None
        line = (
            f"Peeking-safe rule: would have stopped after {users:,} users: {results.decision.action.replace('_', ' ')}"
            + (f" {results.decision.winner}" if results.decision.winner else "")
            + f" ({results.decision.reason})"
        )
    if naive is not None:
        line += (
            f"\n(a reader stopping at the first fixed-horizon p < 0.05 would have stopped after {naive:,} users;"
            " with looks like these that habit declares false winners far more often than 5%: docs/experiments.md)"
        )
    return line


def _simulate_user(
    client: PromptStreamClient, prompt_id: str, user: str, rng: random.Random, latencies: list[int]
) -> None:
    run = client.run_prompt(prompt_id, {"name": user}, external_user_id=user)
    truth = TRUTH[run.variant_assigned]
    clock = time.perf_counter_ns

    def timed(call: Callable[..., object], *args: object, **kwargs: object) -> None:
        begin = clock()
        call(run.run_id, run.experiment_id, *args, external_user_id=user, **kwargs)
        latencies.append(clock() - begin)

    timed(client.track_engagement, engagement_score=round(rng.expovariate(1 / truth.seconds), 1))
    if rng.random() < truth.click:
        timed(client.track_click, "get-started", source="demo", metadata={"position": 1})
        if rng.random() < truth.convert_after_click:
            timed(client.track_conversion, "signup", metadata={"plan": rng.choice(["free", "pro"])})
    if rng.random() < 0.5:  # half the users leave feedback
        timed(client.track_feedback, thumbs_up=rng.random() < truth.thumbs_up)
    if rng.random() < 0.3:
        timed(client.track_rating, rating=min(5.0, max(1.0, round(rng.gauss(truth.rating, 0.9)))))


def _plot(history: list[tuple[int, ExperimentResults]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [
        (users, figure)
        for users, results in history
        if len(results.variants) > 1
        and (figure := results.variant("v2").conversion.per_user).always_valid is not None
        and figure.always_valid.ci_low is not None
        and figure.fixed_horizon is not None
        and figure.fixed_horizon.ci_low is not None
    ]
    figure_, axis = plt.subplots(figsize=(8, 4.5))
    xs = [users for users, _ in points]
    safe = [f.always_valid for _, f in points]
    fixed = [f.fixed_horizon for _, f in points]
    axis.fill_between(
        xs,
        [e.ci_low * 100 for e in safe if e is not None and e.ci_low is not None],
        [e.ci_high * 100 for e in safe if e is not None and e.ci_high is not None],
        color="#2b6cb0",
        alpha=0.25,
        label="always-valid 95% (read it whenever you like)",
    )
    for bound in ("ci_low", "ci_high"):
        axis.plot(
            xs,
            [getattr(e, bound) * 100 for e in fixed if e is not None],
            color="#dd6b20",
            linestyle="--",
            label="fixed-horizon 95% (valid at one pre-set look)" if bound == "ci_low" else None,
        )
    axis.plot(xs, [(f.lift or 0.0) * 100 for _, f in points], color="black", linewidth=1, label="observed lift")
    axis.axhline(0.0, color="grey", linewidth=0.8)
    stop = next(((u, r) for u, r in history if r.decision is not None and r.decision.action != "keep_running"), None)
    if stop is not None and stop[1].decision is not None:
        axis.axvline(stop[0], color="#2b6cb0", linewidth=0.8, linestyle=":")
        axis.annotate(
            f" stop: {stop[1].decision.action.replace('_', ' ')}", (stop[0], axis.get_ylim()[1] * 0.9), fontsize=8
        )
    final = history[-1][1] if history else None
    action = final.decision.action.replace("_", " ") if final is not None and final.decision else "—"
    axis.set_title(f"v2 vs v1, conversion per user: lift with its intervals (decision now: {action})")
    axis.set_xlabel("users so far")
    axis.set_ylabel("lift (percentage points)")
    axis.legend(loc="upper right", fontsize=8)
    axis.grid(alpha=0.3)
    figure_.tight_layout()
    try:
        figure_.savefig(path, dpi=120)
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(figure_)
    sys.stdout.flush()
