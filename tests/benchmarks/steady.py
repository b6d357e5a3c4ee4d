"""The agent's background cost at a steady rate (issue 19): CPU per event of the spooler and sender threads while an
application tracks events at a fixed pace, as a web app's request threads do, before and after a change.

Each measurement is a fresh process (``steady.py child``) that builds a client sending to the counting sink, tracks
``--rate`` events per second in groups of 3 (one "request"), paced by sleeping, for ``--seconds``, then flushes.
It reports, over the paced window:

- the CPU time of ``promptstream-spooler`` and ``promptstream-sender`` (each thread's own clock, from
  ``/proc/self/task/<tid>/stat``, so time other processes take on a shared machine is not counted), per event;
- the caller's time in the ``track_click`` calls (``perf_counter_ns`` around each group of 3), per event;
- the HTTP requests the sink received and the events it counted (distinct and duplicated).

Variants: PromptStream as of an earlier commit (``--before``, exported with ``git archive`` and put first on the
child's PYTHONPATH) and as in the working tree, interleaved round by round, order rotating. Thread CPU time is
what load on a shared machine disturbs least (the machine's other work shows in wall time, not in a thread's own
clock), so it is this page's measure of what the background work costs.

    python tests/benchmarks/steady.py --before aa4f20a --rates 600,1500,3000 --rounds 5 --seconds 8
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
_TICKS = os.sysconf("SC_CLK_TCK")


def thread_cpu_s(native_id: int) -> float:
    text = Path(f"/proc/self/task/{native_id}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


# Per-stage CPU (--stages): each of these is wrapped so that the calling thread's own CPU clock is read around it.
# Inclusive: a spool pass contains its append; a delivery round its claims, sends (encode + request) and acks.
STAGES = {
    "spool pass (queue -> spool)": ("promptstream._agent._spooler", "Spooler", "spool_queued"),
    "append transaction": ("promptstream._agent._sqlite_spool", "SqliteSpool", "append"),
    "WAL checkpoint": ("promptstream._agent._sqlite_spool", "SqliteSpool", "checkpoint_if_due"),
    "delivery round": ("promptstream._agent._delivery", "Delivery", "deliver"),
    "claim transaction": ("promptstream._agent._sqlite_spool", "SqliteSpool", "claim"),
    "encode the body": ("promptstream._agent._sender", "BatchSender", "encode"),
    "HTTP request (httpx)": ("promptstream._http", "HttpTransport", "request"),
    "ack transaction": ("promptstream._agent._sqlite_spool", "SqliteSpool", "ack"),
    "compaction": ("promptstream._agent._sqlite_spool", "SqliteSpool", "compact_if_empty"),
}


def instrument() -> dict[str, list[float]]:
    """Wrap the stages' methods (a benchmark's probe, not a seam of the SDK): [CPU seconds, calls] per stage."""
    import importlib

    totals: dict[str, list[float]] = {}
    for stage, (module_name, class_name, method) in STAGES.items():
        cls = getattr(importlib.import_module(module_name), class_name, None)
        if cls is None or not hasattr(cls, method):
            continue
        original = getattr(cls, method)
        cell = totals.setdefault(stage, [0.0, 0])

        def wrapped(*args: Any, _original: Any = original, _cell: list[float] = cell, **kwargs: Any) -> Any:
            start = time.thread_time()
            try:
                return _original(*args, **kwargs)
            finally:
                _cell[0] += time.thread_time() - start
                _cell[1] += 1

        setattr(cls, method, wrapped)
    return totals


def child(url: str, rate: float, seconds: float, stages: bool = False) -> dict[str, Any]:
    sys.path.insert(0, str(HERE))
    from contenders import EXPERIMENT_ID, KEY, RUN_ID

    import promptstream

    totals = instrument() if stages else {}

    with tempfile.TemporaryDirectory(prefix="steady-spool-") as spool:
        client = promptstream.PromptStreamClient(KEY, base_url=url, spool_dir=spool)
        track = client.track_click
        client.track_click(RUN_ID, EXPERIMENT_ID, "cta", "warm-up")  # starts the threads, opens the spool
        client.flush(30)
        time.sleep(0.5)
        at_start = {stage: list(cell) for stage, cell in totals.items()}
        threads = {t.name: t.native_id for t in threading.enumerate() if t.name.startswith("promptstream-")}
        before = {name: thread_cpu_s(tid) for name, tid in threads.items() if tid is not None}
        process_before = time.process_time()
        period = 3 / rate
        groups = int(seconds / period)
        caller_ns = 0
        start = time.perf_counter()
        for n in range(groups):
            t0 = time.perf_counter_ns()
            for k in range(3):
                track(RUN_ID, EXPERIMENT_ID, "cta", f"user-{n}-{k}", metadata={"position": 1, "variant": "b", "i": n})
            caller_ns += time.perf_counter_ns() - t0
            delay = start + (n + 1) * period - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        elapsed = time.perf_counter() - start
        after = {name: thread_cpu_s(tid) for name, tid in threads.items() if tid is not None}
        at_end = {stage: list(cell) for stage, cell in totals.items()}
        process_cpu = time.process_time() - process_before
        flushed = client.flush(60)
        stats = client.stats()
        client.close()
    events = groups * 3
    background = {name: after[name] - before[name] for name in before}
    return {
        "events": events,
        "achieved_rate": events / elapsed,
        "background_us_per_event": sum(background.values()) * 1e6 / events,
        "spooler_us_per_event": background.get("promptstream-spooler", 0.0) * 1e6 / events,
        "sender_us_per_event": background.get("promptstream-sender", 0.0) * 1e6 / events,
        "process_us_per_event": process_cpu * 1e6 / events,
        "caller_us_per_event": caller_ns / 1e3 / events,
        "stages": {
            stage: {
                "us_per_event": (at_end[stage][0] - at_start[stage][0]) * 1e6 / events,
                "calls_per_s": (at_end[stage][1] - at_start[stage][1]) / elapsed,
            }
            for stage in at_end
        },
        "flushed": flushed,
        "sent": stats.sent,
        "retries": stats.retries,
    }


def run_child(url: str, rate: float, seconds: float, pythonpath: str | None, stages: bool) -> dict[str, Any]:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [pythonpath, env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, __file__, "child", url, str(rate), str(seconds), *(["stages"] if stages else [])],
        capture_output=True,
        text=True,
        env=env,
        timeout=seconds + 180,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def summarise(runs: list[dict[str, Any]]) -> str:
    figures = [
        ("background CPU µs/event", "background_us_per_event", "{:.1f}"),
        ("spooler", "spooler_us_per_event", "{:.1f}"),
        ("sender", "sender_us_per_event", "{:.1f}"),
        ("process CPU µs/event", "process_us_per_event", "{:.1f}"),
        ("caller µs/event", "caller_us_per_event", "{:.2f}"),
        ("events per request", "events_per_request", "{:.0f}"),
        ("load avg", "load_avg", "{:.1f}"),
    ]
    lines = ["| events/s | variant | " + " | ".join(f[0] for f in figures) + " | delivered, duplicates |"]
    lines.append("|---:|---|" + "---:|" * (len(figures) + 1))
    for rate in dict.fromkeys(r["rate"] for r in runs):
        for label in dict.fromkeys(r["label"] for r in runs):
            mine = [r for r in runs if r["rate"] == rate and r["label"] == label]
            cells = []
            for _, key, form in figures:
                values = [float(r[key]) for r in mine]
                med, lo, hi = statistics.median(values), min(values), max(values)
                cells.append(f"{form.format(med)} ({form.format(lo)}\u2013{form.format(hi)})")
            tracked = sum(r["events"] for r in mine)
            delivered = sum(r["distinct"] for r in mine)
            duplicates = sum(r["duplicates"] for r in mine)
            lines.append(
                f"| {rate:,.0f} | {label} | " + " | ".join(cells) + f" | {delivered:,} of {tracked:,}, {duplicates} |"
            )
    if any(r.get("stages") for r in runs):
        lines += [
            "",
            "| events/s | variant | stage | CPU µs per event | calls per second |",
            "|---:|---|---|---:|---:|",
        ]
        for rate in dict.fromkeys(r["rate"] for r in runs):
            for label in dict.fromkeys(r["label"] for r in runs):
                mine = [r for r in runs if r["rate"] == rate and r["label"] == label and r.get("stages")]
                for stage in STAGES:
                    cost = [r["stages"][stage]["us_per_event"] for r in mine if stage in r["stages"]]
                    calls = [r["stages"][stage]["calls_per_s"] for r in mine if stage in r["stages"]]
                    if cost:
                        lines.append(
                            f"| {rate:,.0f} | {label} | {stage} | {statistics.median(cost):.1f} "
                            f"({min(cost):.1f}\u2013{max(cost):.1f}) | {statistics.median(calls):.1f} |"
                        )
    return "\n".join(lines)


def plot(runs: list[dict[str, Any]], path: Path) -> None:
    """Background CPU per event by rate, before and after (median, range as error bars), and the after's stages."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = list(dict.fromkeys(r["rate"] for r in runs))
    labels = list(dict.fromkeys(r["label"] for r in runs))
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / len(labels)
    for i, label in enumerate(labels):
        values = [
            [r["background_us_per_event"] for r in runs if r["rate"] == rate and r["label"] == label] for rate in rates
        ]
        medians = [statistics.median(v) for v in values]
        errors = [
            [m - min(v) for m, v in zip(medians, values, strict=True)],
            [max(v) - m for m, v in zip(medians, values, strict=True)],
        ]
        xs = [x + i * width for x in range(len(rates))]
        left.bar(xs, medians, width, yerr=errors, capsize=3, label=label)
        for x, m in zip(xs, medians, strict=True):
            left.annotate(f"{m:.0f}", (x, m), ha="center", va="bottom", fontsize=8)
    left.set_xticks([x + width * (len(labels) - 1) / 2 for x in range(len(rates))], [f"{r:,.0f}/s" for r in rates])
    left.set_ylabel("CPU µs per event, spooler + sender threads")
    left.set_title("Background CPU per event at a steady rate", fontsize=10)
    left.legend(fontsize=8)
    stage_names = [s for s in STAGES if s not in ("spool pass (queue -> spool)", "delivery round")]
    for i, label in enumerate(labels):
        bottoms = [0.0] * len(rates)
        xs = [x + i * width for x in range(len(rates))]
        for j, stage in enumerate(stage_names):
            heights = []
            for rate in rates:
                mine = [
                    r["stages"][stage]["us_per_event"]
                    for r in runs
                    if r["rate"] == rate and r["label"] == label and stage in r.get("stages", {})
                ]
                heights.append(statistics.median(mine) if mine else 0.0)
            right.bar(
                xs,
                heights,
                width,
                bottom=bottoms,
                color=plt.cm.tab10(j),
                label=stage if i == 0 else None,
                hatch="//" if i == 0 and len(labels) > 1 else None,
                edgecolor="white",
            )
            bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    right.set_xticks([x + width * (len(labels) - 1) / 2 for x in range(len(rates))], [f"{r:,.0f}/s" for r in rates])
    right.set_title("By stage (hatched: " + labels[0] + ")", fontsize=10)
    right.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        print(json.dumps(child(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), "stages" in sys.argv[5:])))
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", help="an earlier commit to compare with the working tree")
    parser.add_argument("--rates", default="600,1500,3000", help="events/s, comma-separated")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--stages", action="store_true", help="CPU per stage too (wraps the agent's methods)")
    parser.add_argument("--from-json", type=Path, help="re-render a saved run")
    parser.add_argument("--plot", type=Path, help="also draw the figures into this PNG (docs/benchmarks-steady.png)")
    args = parser.parse_args()
    if args.from_json:
        runs = json.loads(args.from_json.read_text())["runs"]
        print(summarise(runs))
        if args.plot:
            plot(runs, args.plot)
        return 0
    sys.path.insert(0, str(HERE))
    from run import Sink, free_port, running

    runs: list[dict[str, Any]] = []
    port = free_port()
    with (
        running([sys.executable, str(HERE / "sink.py"), str(port)], "ready"),
        tempfile.TemporaryDirectory(prefix="steady-before-") as before,
    ):
        sink = Sink(port)
        labels: list[tuple[str, str | None]] = [("this tree", str(REPO))]
        if args.before:
            archive = subprocess.run(
                ["git", "-C", str(REPO), "archive", args.before, "promptstream"], check=True, capture_output=True
            )
            subprocess.run(["tar", "-x", "-C", before], input=archive.stdout, check=True)
            labels.insert(0, (f"before ({args.before})", before))
        for round_ in range(args.rounds):
            for rate in (float(r) for r in args.rates.split(",")):
                shift = round_ % len(labels)
                for label, path in labels[shift:] + labels[:shift]:
                    sink.reset()
                    load = os.getloadavg()[0]
                    result = run_child(sink.url, rate, args.seconds, path, args.stages)
                    counts = sink.stats()
                    result.update(
                        rate=rate,
                        label=label,
                        load_avg=load,
                        distinct=counts["distinct"] - 1,  # the warm-up event
                        duplicates=counts["events"] - counts["distinct"],
                        requests=counts["requests"],
                        events_per_request=counts["events"] / max(counts["requests"], 1),
                    )
                    runs.append(result)
                    print(
                        f"round {round_ + 1} {rate:,.0f}/s {label}: {result['background_us_per_event']:.1f} µs/event "
                        f"in the background, {result['events_per_request']:.0f} events/request, load {load:.1f}",
                        flush=True,
                    )
    record = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "before": args.before, "runs": runs}
    (HERE / "steady-last-run.json").write_text(json.dumps(record, indent=1))
    print(summarise(runs))
    if args.plot:
        plot(runs, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
