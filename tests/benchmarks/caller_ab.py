"""The caller's cost of ``track_click`` before and after a change, against the floor, in one run: the suite's
``burst`` scenario (100,000 calls in a fresh process, µs per call) and its ``steady`` one (per-call p50/p99 at 5,000
calls/s), for the floor, PromptStream as of an earlier commit (``git archive``, first on PYTHONPATH) and PromptStream
as in the working tree, interleaved over the rounds (order rotating).

    python tests/benchmarks/caller_ab.py --before aa4f20a --rounds 7
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DASH = "\u2013"
sys.path.insert(0, str(HERE))
from run import Sink, free_port, running  # noqa: E402


def once(scenario: str, name: str, url: str, n: int, pythonpath: str | None) -> dict[str, Any]:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [pythonpath, env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory(prefix="caller-ab-") as spool:
        done = subprocess.run(
            [sys.executable, str(HERE / "scenario.py"), scenario, name, url, spool, str(n)],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
            check=True,
        )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=100_000)
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    port = free_port()
    with (
        running([sys.executable, str(HERE / "sink.py"), str(port)], "ready"),
        tempfile.TemporaryDirectory(prefix="caller-before-") as before,
    ):
        sink = Sink(port)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", args.before, "promptstream"], capture_output=True)
        subprocess.run(["tar", "-x", "-C", before], input=archive.stdout, check=True)
        labels = [("floor", "floor", None), (f"before ({args.before})", "promptstream", before)]
        labels.append(("after (this tree)", "promptstream", str(REPO)))
        for round_ in range(args.rounds):
            shift = round_ % len(labels)
            for label, name, path in labels[shift:] + labels[:shift]:
                load = os.getloadavg()[0]
                burst = once("burst", name, sink.url, args.calls, path)
                steady = once("steady", name, sink.url, 0, path)
                rows.append(
                    {
                        "round": round_,
                        "label": label,
                        "load_avg": load,
                        "us_per_call": burst["caller_s_per_call"] * 1e6,
                        **{k: v for k, v in steady.items() if k.startswith("p")},
                    }
                )
                print(f"round {round_ + 1} {label}: {rows[-1]['us_per_call']:.2f} µs/call, load {load:.1f}", flush=True)
    by_round = {(r["round"], r["label"]): r for r in rows}
    lines = [
        "| | median µs/call (burst) | range | ratio to the same round's floor, median (range) | p50 µs at 5,000/s "
        "| p99 µs at 5,000/s | load average |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, _, _ in labels:
        mine = [r for r in rows if r["label"] == label]
        us = [r["us_per_call"] for r in mine]
        ratios = [r["us_per_call"] / by_round[(r["round"], "floor")]["us_per_call"] for r in mine]
        p50 = [r.get("p50_us", r.get("p50", 0.0)) for r in mine]
        p99 = [r.get("p99_us", r.get("p99", 0.0)) for r in mine]
        loads = [r["load_avg"] for r in mine]
        lines.append(
            f"| {label} | {statistics.median(us):.2f} | {min(us):.2f}{DASH}{max(us):.2f} "
            f"| {statistics.median(ratios):.1f}x ({min(ratios):.1f}{DASH}{max(ratios):.1f}x) "
            f"| {statistics.median(p50):.2f} | {statistics.median(p99):.2f} | {min(loads):.1f}{DASH}{max(loads):.1f} |"
        )
    text = "\n".join(lines)
    (HERE / "caller-ab-last-run.json").write_text(
        json.dumps({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rows": rows}, indent=1)
    )
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
