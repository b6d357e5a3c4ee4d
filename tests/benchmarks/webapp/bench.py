"""The web-app benchmark (issue 19): what a tracking SDK costs a real web app under load.

What it runs
    A small Flask app under gunicorn (2 sync workers, ``--preload``) and the same app in FastAPI under uvicorn
    (2 workers; PromptStream's and PostHog's async clients, Segment has none). Each request builds a ~2 KB JSON
    answer and tracks 3 events, each for another user (tracking.py). Variants: no tracking, PromptStream, Segment and
    PostHog, every SDK with its default settings, all sending to the same loopback counting sink (../sink.py, shared
    with the other benchmarks; it counts event ids). Every (app, variant) pair gets a fresh server and a fresh spool
    directory in every round; the variants are interleaved, their order rotating from round to round, so a slow spell
    of the machine hits all of them.

    One run of one variant:
      1. start the server; wait until both workers answer; warm up with wrk for --warmup seconds;
      2. maximum throughput: ``wrk -t1 -c16 -d20s`` (``wrk_report.lua`` prints wrk's summary as JSON);
      3. drain: wait until the sink holds every event tracked so far (at most --drain-timeout seconds);
      4. fixed rate: paced.py, in its own process, at 400 requests/s for the same duration; its latency is measured
         from the moment each request was meant to be sent, so a stall counts against every request it delays;
      5. drain again; read the servers' memory; stop the server gracefully (SIGTERM); read the sink once more.

What it reports, per app and variant (the median over the rounds, and the range)
    - req/s and latency p50/p90/p99 at maximum throughput (wrk), and p50/p90/p99 at the fixed rate (paced.py);
    - app CPU per request: user + system CPU of the server's whole process tree (master, workers, their threads)
      from /proc, from the start of the load until the sink had every event it tracked, divided by the requests;
    - time in the 3 track calls: ``perf_counter_ns`` around them inside the app, one sample per request, collected
      from each worker through ``GET /_bench/counters`` (mean and p99 per request);
    - RSS (and PSS, which counts the pages --preload shares only once) summed over the process tree after the load;
    - tracked / delivered / duplicated events: tracked = track calls made in the workers; delivered = distinct
      event ids at the sink after the drain and the shutdown; duplicates = events the sink received beyond one per
      id. Every run's delivery is checked: "exact" means delivered == tracked and no duplicates.

    The table goes to stdout and to tests/benchmarks/webapp/last-run.md; the raw figures to
    tests/benchmarks/webapp/last-run.json. With --write-docs, the section "In a web app under load" of
    docs/benchmarks.md is rewritten with the table and docs/benchmarks-webapp.png is drawn (report.py keeps that section
    when it rewrites the rest of the page).

Install wrk (the maximum-throughput load generator)
    apt-get update && apt-get install -y wrk        # Debian and Ubuntu package it; on macOS: brew install wrk

Run
    tox -e bench-webapp                              # the measurement: 4 rounds x 2 apps x 4 variants, ~30 minutes
    tox -e bench-webapp -- --quick                   # 1 round, 3 s per phase: proves the harness end to end
    tox -e bench-webapp -- --rounds 4 --write-docs   # measure and publish into docs/benchmarks.md
    python tests/benchmarks/webapp/bench.py --from-json tests/benchmarks/webapp/last-run.json   # re-render a run

Measure on a quiet machine: the app, wrk, the paced generator and the sink share its cores, and they are the noise.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
import procs  # noqa: E402
from run import Sink, free_port, running  # noqa: E402
from summary import VARIANTS, markdown, write_docs  # noqa: E402

APPS = ("flask", "fastapi")
WORKERS = 2
WRK_MISSING = """wrk was not found on PATH. It is the maximum-throughput load generator of this benchmark. Install it:
    apt-get update && apt-get install -y wrk      (Debian, Ubuntu)
    brew install wrk                              (macOS)"""


def server_command(app: str, port: int) -> list[str]:
    if app == "flask":
        return [
            *(sys.executable, "-m", "gunicorn", "--preload", "--workers", str(WORKERS), "--worker-class", "sync"),
            *("--bind", f"127.0.0.1:{port}", "--config", str(HERE / "gunicorn_conf.py"), "flask_app:app"),
        ]
    return [
        # uvloop and httptools named, so that a missing one fails loudly instead of silently measuring the slow path
        *(sys.executable, "-m", "uvicorn", "fastapi_app:app", "--workers", str(WORKERS)),
        *("--loop", "uvloop", "--http", "httptools"),
        *("--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning"),
    ]


def _get_json(url: str) -> dict[str, Any]:
    # a fresh connection each time: a kept-alive one would always reach the same uvicorn worker
    response = httpx.get(url, headers={"Connection": "close"}, timeout=10)
    response.raise_for_status()
    return dict(response.json())


def from_every_worker(
    url: str, timeout: float = 60.0, server: subprocess.Popen[bytes] | None = None
) -> dict[int, dict[str, Any]]:
    """One answer from each of the workers, keyed by pid. The kernel hands each connection to whichever worker
    accepts first, so ask a few at once until both have answered (a busy sync worker leaves the next to the other)."""
    answers: dict[int, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    with concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="bench-probe") as pool:
        while len(answers) < WORKERS:
            if time.monotonic() > deadline or (server is not None and server.poll() is not None):
                raise TimeoutError(f"only workers {sorted(answers)} answered {url} within {timeout} s")
            for future in concurrent.futures.as_completed([pool.submit(_get_json, url) for _ in range(4)]):
                try:
                    answer = future.result()
                except httpx.HTTPError:
                    time.sleep(0.05)  # not listening yet
                    continue
                answers.setdefault(int(answer["pid"]), answer)
    return answers


class AppServer:
    """gunicorn or uvicorn in a process of its own (its log in a file), stopped with SIGTERM as a deployment would."""

    def __init__(self, app: str, port: int, env: dict[str, str], log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                server_command(app, port), cwd=HERE, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        try:
            self.workers = sorted(from_every_worker(self.url + "/_bench/health", server=self.process))
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"{app} did not start; its log:\n{log.read_text()[-3000:]}") from None

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        tree = procs.tree(self.pid)
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        for pid in tree[1:]:  # a worker outliving its master would keep sending into the next run's sink
            deadline = time.monotonic() + 10
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            if Path(f"/proc/{pid}").exists():
                os.kill(pid, signal.SIGKILL)


def run_wrk(url: str, seconds: float, threads: int, connections: int) -> dict[str, Any]:
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s"]
    done = subprocess.run(
        [*command, "-s", str(HERE / "wrk_report.lua"), url],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    )
    report: dict[str, Any] = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
    report["req_s"] = report["requests"] / (report["duration_us"] / 1e6)
    report["errors"] = sum(report[key] for key in report if key.startswith("errors_"))
    return report


def run_paced(url: str, rate: float, seconds: float, connections: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(HERE / "paced.py"), url, str(rate), str(seconds), str(connections)],
        capture_output=True,
        text=True,
        timeout=seconds + 90,
        check=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def drain(sink: Sink, tracked: int, timeout: float) -> float | None:
    """Seconds until the sink held ``tracked`` distinct events, or None if it did not within ``timeout``."""
    start = time.monotonic()
    while sink.stats()["distinct"] < tracked:
        if time.monotonic() - start > timeout:
            return None
        time.sleep(0.05)
    return time.monotonic() - start


def track_times(before: dict[int, dict[str, Any]], after: dict[int, dict[str, Any]]) -> dict[str, float | None]:
    """Mean, p50 and p99 (µs) of the per-request time in the track calls, over the requests served between two
    snapshots, every worker's together (None when nothing was tracked)."""
    samples: list[int] = []
    for pid, report in after.items():
        samples += report["track_ns"][len(before.get(pid, {}).get("track_ns", [])) :]
    samples.sort()

    def at(q: float) -> float | None:
        return samples[min(len(samples) - 1, int(q * len(samples)))] / 1e3 if samples else None

    mean = sum(samples) / len(samples) / 1e3 if samples else None
    return {"track_mean_us": mean, "track_p50_us": at(0.50), "track_p99_us": at(0.99), "track_samples": len(samples)}


def settled(sink: Sink, quiet: float = 0.5, timeout: float = 10.0) -> dict[str, int]:
    """The sink's counts once nothing has arrived for ``quiet`` seconds (a shutdown flush may still be landing)."""
    deadline = time.monotonic() + timeout
    last = sink.stats()
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = sink.stats()
        if now == last:
            break
        last = now
    return last


def one_run(app: str, variant: str, sink: Sink, args: argparse.Namespace) -> dict[str, Any]:
    sink.reset()
    with tempfile.TemporaryDirectory(prefix="webbench-") as tmp:
        env = dict(
            os.environ,
            BENCH_VARIANT=variant,
            BENCH_SINK_URL=sink.url,
            BENCH_SPOOL_DIR=str(Path(tmp) / "spool"),
            PYTHONPATH=os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
        )
        server = AppServer(app, free_port(), env, Path(tmp) / "server.log")
        try:
            answer = server.url + "/answer"
            counters = server.url + "/_bench/counters"
            run_wrk(answer, args.warmup, args.threads, args.connections)
            at_start = from_every_worker(counters)
            cpu_start = procs.cpu_seconds(server.pid)
            peak = run_wrk(answer, args.duration, args.threads, args.connections)
            after_peak = from_every_worker(counters)
            peak["drain_s"] = drain(sink, sum(r["tracked"] for r in after_peak.values()), args.drain_timeout)
            cpu_peak = procs.cpu_seconds(server.pid)
            paced = run_paced(answer, args.rate, args.paced_duration, args.connections)
            after_paced = from_every_worker(counters)
            tracked = sum(r["tracked"] for r in after_paced.values())
            paced["drain_s"] = drain(sink, tracked, args.drain_timeout)
            cpu_paced = procs.cpu_seconds(server.pid)
            memory = procs.memory_kib(server.pid)
            restarted = sorted(after_paced) != server.workers
        finally:
            server.stop()
        counts = settled(sink)
        log_tail = (Path(tmp) / "server.log").read_text(errors="replace")[-2000:]
    peak["cpu_ms_per_request"] = (cpu_peak - cpu_start) * 1e3 / max(peak["requests"], 1)
    paced["cpu_ms_per_request"] = (cpu_paced - cpu_peak) * 1e3 / max(paced["completed"], 1)
    peak.update(track_times(at_start, after_peak))
    paced.update(track_times(after_peak, after_paced))
    return {
        "app": app,
        "variant": variant,
        "peak": peak,
        "paced": paced,
        "rss_mib": memory["rss_kib"] / 1024,
        "pss_mib": memory["pss_kib"] / 1024,
        "tracked": tracked,
        "received": counts["events"],
        "delivered": counts["distinct"],
        "duplicates": counts["events"] - counts["distinct"],
        "requests": counts["requests"],  # batches the sink received: events per request shows the SDK's batching
        "worker_restarted": restarted,
        "server_log_tail": log_tail,  # where an SDK says why it dropped events
    }


def one_line(run: dict[str, Any]) -> str:
    peak, paced = run["peak"], run["paced"]
    return (
        f"{run['app']:>7} {run['variant']:>12}: {peak['req_s']:8,.0f} req/s, p99 {peak['p99_us'] / 1e3:6.1f} ms,"
        f" {peak['cpu_ms_per_request']:.2f} ms CPU/req; at {paced['rate']:g}/s p99 {paced['p99_ms'] or 0:6.1f} ms;"
        f" RSS {run['rss_mib']:.0f} MiB; tracked {run['tracked']:,} delivered {run['delivered']:,}"
        f" duplicates {run['duplicates']:,}"
    )


def measure(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {
        "config": {
            key: getattr(args, key)
            for key in ("rounds", "duration", "paced_duration", "rate", "threads", "connections", "warmup")
        },
        "apps": args.apps,
        "variants": args.variants,
        "runs": [],
    }
    port = free_port()
    with running([sys.executable, str(HERE.parent / "sink.py"), str(port)], "ready"):
        sink = Sink(port)
        for round_ in range(args.rounds):
            for app in args.apps:
                shift = round_ % len(args.variants)
                for variant in args.variants[shift:] + args.variants[:shift]:
                    run = one_run(app, variant, sink, args)
                    run["round"] = round_
                    results["runs"].append(run)
                    print(f"round {round_ + 1}/{args.rounds} {one_line(run)}", flush=True)
    commit = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    results["commit"] = commit.stdout.strip() or "?"
    results["date"] = time.strftime("%Y-%m-%d")
    results["machine"] = machine()
    return results


def machine() -> dict[str, str]:
    """Where and with what the figures were taken."""
    import importlib.metadata
    import platform

    lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in lines if "model name" in line), platform.processor() or "?")
    packages = ["promptstream", "segment-analytics-python", "posthog", "flask", "gunicorn", "fastapi", "uvicorn"]
    packages += ["uvloop", "httptools"]
    versions = {}
    for name in packages:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split(" [")[0]
    return {
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "os": platform.platform(),
        "python": f"Python {platform.python_version()}",
        "wrk": wrk,
        "packages": ", ".join(f"{name} {version}" for name, version in versions.items()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds (default 4)")
    parser.add_argument("--duration", type=float, default=20, help="seconds of wrk per run (default 20)")
    parser.add_argument("--paced-duration", type=float, help="seconds at the fixed rate (default: --duration)")
    parser.add_argument("--rate", type=float, default=400, help="requests/s of the paced phase (default 400)")
    parser.add_argument("--threads", type=int, default=1, help="wrk -t (default 1)")
    parser.add_argument("--connections", type=int, default=16, help="wrk -c and paced connections (default 16)")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of wrk before measuring (default 2)")
    parser.add_argument("--drain-timeout", type=float, default=30, help="seconds to wait for delivery (default 30)")
    parser.add_argument("--apps", default=",".join(APPS), help="comma-separated subset of flask,fastapi")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of those 4")
    parser.add_argument("--quick", action="store_true", help="1 round, 3 s per phase, 1 s warm-up: to try it")
    parser.add_argument("--write-docs", action="store_true", help="rewrite its section of docs/benchmarks.md + plot")
    parser.add_argument("--from-json", type=Path, help="re-render a saved run instead of measuring")
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 unless PromptStream's delivery was exact in every run"
    )
    args = parser.parse_args()
    args.apps = [app for app in args.apps.split(",") if app]
    args.variants = [variant for variant in args.variants.split(",") if variant]
    unknown = sorted(set(args.apps) - set(APPS)) + sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown app or variant: {', '.join(unknown)}")
    if args.quick:
        args.rounds, args.duration, args.warmup = 1, 3.0, 1.0
    if args.paced_duration is None:
        args.paced_duration = args.duration
    if args.from_json:
        results = json.loads(args.from_json.read_text())
    else:
        if shutil.which("wrk") is None:
            print(WRK_MISSING, file=sys.stderr)
            return 2
        results = measure(args)
        (HERE / "last-run.json").write_text(json.dumps(results, indent=1))
    text = markdown(results)
    (HERE / "last-run.md").write_text(text + "\n")
    print(text)
    if args.write_docs:
        write_docs(results, text)
    ours = [run for run in results["runs"] if run["variant"] == "promptstream"]
    inexact = [run for run in ours if run["delivered"] != run["tracked"] or run["duplicates"]]
    if args.strict and inexact:
        print(f"PromptStream's delivery was not exact in {len(inexact)} of {len(ours)} runs", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
