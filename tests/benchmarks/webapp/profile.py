"""Where a web app's CPU goes when it tracks events (issue 19): the benchmark's app under load, sampled by py-spy.

It starts the Flask app under gunicorn (or the FastAPI app under uvicorn) with one variant, loads it at a fixed rate
(paced.py, default 400 requests/s, 1,200 events/s) or at full speed (wrk), and samples every process of the server
with py-spy twice over the same kind of load:

- on-CPU (``py-spy record``, idle threads left out): where the CPU time goes, per thread and per stage;
- GIL held (``--gil``): which thread holds the GIL, so what the background threads take from the request threads.

Each sample is put in one stage by the innermost frame it recognises (STAGES below): the request thread's track
calls, the spooler's queue -> spool pass, the sender's claim, body encoding, HTTP request, acknowledgement and
compaction, waits, and the rest of the app. The figure per event is the stage's samples / the sampling rate / the
events tracked while sampling: CPU microseconds per tracked event (a sampler's estimate, not a clock's).

Run (from the repository, with the bench-webapp environment's packages and py-spy installed)::

    python tests/benchmarks/webapp/profile.py                     # flask, promptstream, 400 req/s, 15 s per phase
    python tests/benchmarks/webapp/profile.py --wrk               # the same at full speed (wrk -t1 -c16)
    python tests/benchmarks/webapp/profile.py --app fastapi --raw /tmp/stacks   # keep the collapsed stacks too

py-spy needs ptrace rights over the app (root, or kernel.yama.ptrace_scope=0).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from bench import AppServer, from_every_worker, run_paced, run_wrk  # noqa: E402
from run import Sink, free_port, running  # noqa: E402

# (thread name prefix, function-name fragment, stage); the first match, innermost frame first, wins
STAGES: list[tuple[str, str, str]] = [
    ("promptstream-spooler", "checkpoint_if_due", "spooler: WAL checkpoint"),
    ("promptstream-spooler", "append (", "spooler: append transaction (SQLite)"),
    ("promptstream-spooler", "PayloadChunk", "spooler: take + join the queue"),
    ("promptstream-spooler", "take (", "spooler: take + join the queue"),
    ("promptstream-spooler", "wait (", "spooler: wake-up / wait"),
    ("promptstream-spooler", "", "spooler: other"),
    ("promptstream-sender", "compact_if_empty", "sender: compaction (SQLite)"),
    ("promptstream-sender", "claim (", "sender: claim transaction (SQLite)"),
    ("promptstream-sender", "renew (", "sender: renew (SQLite)"),
    ("promptstream-sender", "_bury", "sender: ack transaction (SQLite)"),
    ("promptstream-sender", "ack (", "sender: ack transaction (SQLite)"),
    ("promptstream-sender", "encode (", "sender: encode the body"),
    ("promptstream-sender", "_gzip", "sender: encode the body"),
    ("promptstream-sender", "outcome_for_status", "sender: read the answer"),
    ("promptstream-sender", "request (", "sender: HTTP request (httpx)"),
    ("promptstream-sender", "wait (", "sender: wake-up / wait"),
    ("promptstream-sender", "", "sender: other"),
    ("promptstream", "", "other promptstream threads"),
    ("", "track_click", "request thread: track_* calls"),
    ("", "_track", "request thread: track_* calls"),
    ("", "", "request thread & server: the app"),
]


def stage_of(thread: str, frames: list[str]) -> str:
    for prefix, fragment, stage in STAGES:
        if not thread.startswith(prefix):
            continue
        if not fragment or any(fragment in frame for frame in frames):
            return stage
    return "unclassified"


def read_samples(path: Path) -> collections.Counter[str]:
    """Collapsed stacks (py-spy --format raw --threads --subprocesses) -> samples per stage."""
    stages: collections.Counter[str] = collections.Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        # frames: [process ...;] thread (tid): name; outermost ... innermost
        thread_index = next((i for i, f in enumerate(frames) if f.startswith("thread (")), None)
        if thread_index is None:
            continue
        thread = frames[thread_index].split(": ", 1)[-1]
        stages[stage_of(thread, frames[thread_index + 1 :])] += int(count)
    return stages


def sample(server: AppServer, args: argparse.Namespace, gil: bool, out: Path) -> dict[str, object]:
    """Load the app for args.duration seconds while py-spy samples it; the events tracked meanwhile."""
    counters = server.url + "/_bench/counters"
    command = ["py-spy", "record", "--pid", str(server.pid), "--subprocesses", "--threads", "--format", "raw"]
    command += ["--rate", str(args.rate_hz), "--duration", str(int(args.duration)), "--output", str(out)]
    if gil:
        command.append("--gil")
    before = from_every_worker(counters)
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)  # py-spy attaches to every process first
    load: dict[str, object] = {}

    def drive() -> None:
        if args.wrk:
            load.update(run_wrk(server.url + "/answer", args.duration - 1, 1, 16))
        else:
            load.update(run_paced(server.url + "/answer", args.rate, args.duration - 1, 16))

    driver = threading.Thread(target=drive)
    driver.start()
    driver.join()
    _, err = spy.communicate(timeout=60)
    if spy.returncode != 0:
        raise RuntimeError(f"py-spy failed: {err[-2000:]}")
    after = from_every_worker(counters)
    tracked = sum(r["tracked"] for r in after.values()) - sum(r["tracked"] for r in before.values())
    requests = sum(r["requests"] for r in after.values()) - sum(r["requests"] for r in before.values())
    return {"stages": read_samples(out), "tracked": tracked, "requests": requests}


def table(on_cpu: dict[str, object], on_gil: dict[str, object], rate_hz: float) -> str:
    cpu_stages: collections.Counter[str] = on_cpu["stages"]  # type: ignore[assignment]
    gil_stages: collections.Counter[str] = on_gil["stages"]  # type: ignore[assignment]
    cpu_total, gil_total = sum(cpu_stages.values()) or 1, sum(gil_stages.values()) or 1
    per_event = 1e6 / rate_hz / max(int(on_cpu["tracked"]), 1)  # type: ignore[call-overload]
    per_event_gil = 1e6 / rate_hz / max(int(on_gil["tracked"]), 1)  # type: ignore[call-overload]
    lines = [
        "| stage | on-CPU share | on-CPU µs per event | GIL-held share | GIL-held µs per event |",
        "|---|---:|---:|---:|---:|",
    ]
    order = [stage for _, _, stage in STAGES]
    for stage in sorted(set(cpu_stages) | set(gil_stages), key=lambda s: order.index(s) if s in order else 99):
        if stage.endswith("wake-up / wait") and not cpu_stages[stage] and not gil_stages[stage]:
            continue
        lines.append(
            f"| {stage} | {100 * cpu_stages[stage] / cpu_total:.1f} % | {cpu_stages[stage] * per_event:.1f} "
            f"| {100 * gil_stages[stage] / gil_total:.1f} % | {gil_stages[stage] * per_event_gil:.1f} |"
        )
    background = sum(n for s, n in cpu_stages.items() if s.startswith(("spooler", "sender", "other promptstream")))
    caller = cpu_stages["request thread: track_* calls"]
    lines.append(
        f"| **all background threads** | {100 * background / cpu_total:.1f} % | {background * per_event:.1f} | "
        f"{100 * sum(n for s, n in gil_stages.items() if s.startswith(('spooler', 'sender'))) / gil_total:.1f} % "
        f"| {sum(n for s, n in gil_stages.items() if s.startswith(('spooler', 'sender'))) * per_event_gil:.1f} |"
    )
    lines.append(f"| **track_* in the caller** | {100 * caller / cpu_total:.1f} % | {caller * per_event:.1f} | | |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--app", default="flask", choices=("flask", "fastapi"))
    parser.add_argument("--variant", default="promptstream")
    parser.add_argument("--rate", type=float, default=400, help="requests/s of the paced load (default 400)")
    parser.add_argument("--wrk", action="store_true", help="full speed (wrk -t1 -c16) instead of the paced load")
    parser.add_argument("--duration", type=float, default=15, help="seconds per sampled phase (default 15)")
    parser.add_argument("--rate-hz", type=int, default=250, help="py-spy samples per second (default 250)")
    parser.add_argument("--raw", type=Path, help="keep the collapsed stacks in this directory")
    args = parser.parse_args()
    if shutil.which("py-spy") is None:
        print("py-spy is not on PATH: pip install py-spy", file=sys.stderr)
        return 2
    port = free_port()
    with (
        running([sys.executable, str(HERE.parent / "sink.py"), str(port)], "ready"),
        tempfile.TemporaryDirectory(prefix="webprof-") as tmp,
    ):
        sink = Sink(port)
        env = dict(
            os.environ,
            BENCH_VARIANT=args.variant,
            BENCH_SINK_URL=sink.url,
            BENCH_SPOOL_DIR=str(Path(tmp) / "spool"),
            PYTHONPATH=os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
        )
        server = AppServer(args.app, free_port(), env, Path(tmp) / "server.log")
        try:
            run_wrk(server.url + "/answer", 2, 1, 16)  # warm-up
            raw = args.raw or Path(tmp)
            raw.mkdir(parents=True, exist_ok=True)
            on_cpu = sample(server, args, gil=False, out=raw / "on-cpu.txt")
            on_gil = sample(server, args, gil=True, out=raw / "gil.txt")
        finally:
            server.stop()
    load = f"wrk -t1 -c16 -d{args.duration - 1:g}s" if args.wrk else f"{args.rate:g} requests/s (paced.py)"
    print(f"{args.app} / {args.variant}, {load}, py-spy at {args.rate_hz} Hz, {time.strftime('%Y-%m-%d %H:%M UTC')}")
    print(f"load average {os.getloadavg()[0]:.1f}; events tracked while sampling: {on_cpu['tracked']:,} (on-CPU),")
    print(f"{on_gil['tracked']:,} (GIL); requests {on_cpu['requests']:,} / {on_gil['requests']:,}")
    print()
    print(table(on_cpu, on_gil, args.rate_hz))
    print(json.dumps({k: dict(v["stages"]) for k, v in (("cpu", on_cpu), ("gil", on_gil))}))  # type: ignore[index]
    return 0


if __name__ == "__main__":
    sys.exit(main())
