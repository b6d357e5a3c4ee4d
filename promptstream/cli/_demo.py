"""``promptstream demo``: a two-variant experiment end to end, in seconds, with nothing to set up.

A reference server starts in-process on a free loopback port with a temporary database; a prompt gets two versions
and a 50/50 experiment; simulated users (seeded) run it through the real SDK over HTTP and click, convert, rate and
give feedback with different true rates per variant; then the server's results and the SDK's own delivery figures
are printed. ``--plot`` draws conversion per variant, with its interval, as the experiment goes.
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
from .._models import ExperimentResults
from ._common import CommandError, server_module
from ._render import render_results

API_KEY = "ps_demo_key"
CHECKPOINTS = 10  # results read this many times as users arrive, for --plot


class Behaviour:
    """One variant's true rates: what the experiment is supposed to discover."""

    def __init__(self, click: float, convert_after_click: float, thumbs_up: float, rating: float, seconds: float):
        self.click, self.convert_after_click = click, convert_after_click
        self.thumbs_up, self.rating, self.seconds = thumbs_up, rating, seconds


TRUTH = {
    "v1": Behaviour(click=0.30, convert_after_click=0.30, thumbs_up=0.60, rating=3.6, seconds=40.0),
    "v2": Behaviour(click=0.38, convert_after_click=0.38, thumbs_up=0.68, rating=3.9, seconds=46.0),
}


def _progress(total: int) -> tuple[AbstractContextManager[Any], Callable[[], None]]:
    try:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    except ImportError:
        return nullcontext(), lambda: None
    progress = Progress(
        TextColumn("simulating users"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=True
    )
    task = progress.add_task("users", total=total)
    return progress, lambda: progress.advance(task)


def cmd_demo(args: argparse.Namespace) -> int:
    if args.users < 1:
        raise CommandError("--users must be at least 1")
    if args.plot and not args.plot.lower().endswith((".png", ".svg")):
        raise CommandError("--plot writes a .png or .svg file")
    server = server_module()
    rng = random.Random(args.seed)
    latencies: list[int] = []
    history: list[tuple[int, ExperimentResults]] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="promptstream-demo-") as tmp:
        store = server.Store(Path(tmp) / "server.sqlite3")
        with server.ServerThread(store, [API_KEY]) as running:
            prompt = store.create_prompt("onboarding", "Welcome {{name}}! Here is how to start.")
            store.add_version(prompt["prompt_id"], "Hi {{name}}, you're 3 steps from your first result.")
            experiment = store.create_experiment(
                prompt["prompt_id"],
                [server.VariantSpec(1, 1.0), server.VariantSpec(2, 1.0)],
                "onboarding copy",
                experiment_id=f"demo-seed-{args.seed}",  # assignment hashes the id: the same seed, the same split
            )
            print(f"server      {running.url} (temporary database)")
            print(f"experiment  {experiment['experiment_id']}: v1 (control) vs v2, 50/50, {args.users:,} users")
            client = PromptStreamClient(API_KEY, base_url=running.url, spool_dir=Path(tmp) / "spool")
            with client:
                bar, advance = _progress(args.users)
                every = max(1, args.users // CHECKPOINTS)
                with bar:
                    for user_number in range(args.users):
                        _simulate_user(client, prompt["prompt_id"], f"user-{user_number:05d}", rng, latencies)
                        advance()
                        if args.plot and ((user_number + 1) % every == 0 or user_number + 1 == args.users):
                            client.flush(timeout=10)
                            history.append(
                                (user_number + 1, client.get_experiment_results(experiment["experiment_id"]))
                            )
                delivered = client.flush(timeout=30)
                results = client.get_experiment_results(experiment["experiment_id"])
                stats = client.stats()
            stored, duplicates = store.count("events"), sum(row["duplicates"] for row in store.batch_log())
            store.close()
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
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise CommandError("--plot needs matplotlib: pip install 'promptstream[plot]'") from None
    figure, axis = plt.subplots(figsize=(8, 4.5))
    for name, colour in (("v1", "#2b6cb0"), ("v2", "#dd6b20")):
        points = [(users, r.variant(name).conversion.per_user) for users, r in history]
        xs = [users for users, _ in points]
        axis.plot(xs, [(rate.rate or 0) * 100 for _, rate in points], color=colour, label=f"{name} conversion / user")
        axis.fill_between(
            xs,
            [rate.ci_low * 100 for _, rate in points],
            [rate.ci_high * 100 for _, rate in points],
            color=colour,
            alpha=0.2,
        )
    final = history[-1][1]
    p_value = final.variant("v2").conversion.per_user.p_value
    axis.set_title(f"Conversion per user with 95% Wilson intervals (v2 vs v1 now: p = {p_value:.3g})")
    axis.set_xlabel("users so far")
    axis.set_ylabel("conversion (%)")
    axis.legend(loc="upper right")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    try:
        figure.savefig(path, dpi=120)
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(figure)
    sys.stdout.flush()
