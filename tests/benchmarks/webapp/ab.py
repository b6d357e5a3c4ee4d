"""Before and after in the same run: bench.py's web app with no tracking, PromptStream as of an earlier commit, and
PromptStream as in the working tree, interleaved round by round (their order rotating), so that a slow spell of a
shared machine hits all three. Each run is one ``bench.py --rounds 1`` with one variant; the earlier commit's
``promptstream`` package is exported with ``git archive`` and put first on the app's PYTHONPATH.

    python tests/benchmarks/webapp/ab.py --before aa4f20a --rounds 4 --apps flask,fastapi

Prints, per app and variant, the median and range over the rounds of req/s, p99, app CPU per request at full speed,
p99 and CPU per request at the fixed rate, time in the 3 track calls, RSS, and the delivery counts, each with the
load average (1 min) seen when its runs began. The raw runs go to tests/benchmarks/webapp/ab-last-run.json.
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
REPO = HERE.parents[2]


def export(commit: str, into: Path) -> None:
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", commit, "promptstream"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)


def one(app: str, label: str, variant: str, pythonpath: str | None, args: argparse.Namespace) -> dict[str, Any]:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [pythonpath, env.get("PYTHONPATH")]))
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run.json"
        command = [sys.executable, str(HERE / "bench.py"), "--rounds", "1", "--apps", app, "--variants", variant]
        command += ["--duration", str(args.duration), "--paced-duration", str(args.paced_duration)]
        command += ["--rate", str(args.rate)]
        subprocess.run(command, env=env, check=True, capture_output=True, text=True, timeout=900)
        out.write_text((HERE / "last-run.json").read_text())
        run: dict[str, Any] = json.loads(out.read_text())["runs"][0]
    run["label"], run["load_avg"] = label, load
    run.pop("server_log_tail", None)
    return run


FIGURES = [
    ("req/s", lambda r: r["peak"]["req_s"], "{:,.0f}"),
    ("p99 ms", lambda r: r["peak"]["p99_us"] / 1e3, "{:.1f}"),
    ("CPU ms/req", lambda r: r["peak"]["cpu_ms_per_request"], "{:.3f}"),
    ("paced p99 ms", lambda r: r["paced"]["p99_ms"], "{:.1f}"),
    ("paced CPU ms/req", lambda r: r["paced"]["cpu_ms_per_request"], "{:.3f}"),
    ("track µs (3 calls)", lambda r: r["peak"]["track_mean_us"], "{:.1f}"),
    ("RSS MiB", lambda r: r["rss_mib"], "{:.0f}"),
    ("events per request sent", lambda r: r["received"] / r["requests"] if r.get("requests") else None, "{:.0f}"),
    ("load avg", lambda r: r["load_avg"], "{:.1f}"),
]


def cell(values: list[float], form: str) -> str:
    if not values:
        return "\u2013"
    return f"{form.format(statistics.median(values))} ({form.format(min(values))}\u2013{form.format(max(values))})"


def report(runs: list[dict[str, Any]]) -> str:
    lines = []
    for app in dict.fromkeys(r["app"] for r in runs):
        lines += [f"### {app}", "", "| variant | " + " | ".join(name for name, _, _ in FIGURES) + " | delivery |"]
        lines.append("|---|" + "---:|" * (len(FIGURES) + 1))
        for label in dict.fromkeys(r["label"] for r in runs):
            mine = [r for r in runs if r["app"] == app and r["label"] == label]
            cells = []
            for _, get, form in FIGURES:
                values = []
                for r in mine:
                    try:
                        value = get(r)
                    except (KeyError, TypeError):
                        value = None
                    if value is not None:
                        values.append(float(value))
                cells.append(cell(values, form))
            if label == "none":
                delivery = "\u2013"
            else:
                tracked = sum(r["tracked"] for r in mine)
                delivered = sum(r["delivered"] for r in mine)
                duplicates = sum(r["duplicates"] for r in mine)
                delivery = f"{delivered:,} of {tracked:,}, {duplicates} dup."
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {delivery} |")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="the commit to compare with the working tree")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--apps", default="flask,fastapi")
    parser.add_argument("--duration", type=float, default=10, help="seconds of wrk per run (default 10)")
    parser.add_argument("--paced-duration", type=float, default=8, help="seconds at the fixed rate (default 8)")
    parser.add_argument("--rate", type=float, default=400)
    parser.add_argument("--from-json", type=Path, help="re-render saved runs")
    args = parser.parse_args()
    if args.from_json:
        print(report(json.loads(args.from_json.read_text())["runs"]))
        return 0
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ab-before-") as before:
        export(args.before, Path(before))
        labels = [("none", "none", None), (f"before ({args.before})", "promptstream", before)]
        labels.append(("after (this tree)", "promptstream", str(REPO)))
        for round_ in range(args.rounds):
            for app in args.apps.split(","):
                shift = round_ % len(labels)
                for label, variant, path in labels[shift:] + labels[:shift]:
                    run = one(app, label, variant, path, args)
                    runs.append(run)
                    print(
                        f"round {round_ + 1} {app} {label}: {run['peak']['req_s']:,.0f} req/s, "
                        f"{run['peak']['cpu_ms_per_request']:.3f} ms CPU/req, {run.get('requests', 0)} batches sent, "
                        f"load {run['load_avg']:.1f}",
                        flush=True,
                    )
                    (HERE / "ab-last-run.json").write_text(
                        json.dumps({"before": args.before, "date": time.strftime("%Y-%m-%d %H:%M UTC"), "runs": runs})
                    )
    print(report(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
