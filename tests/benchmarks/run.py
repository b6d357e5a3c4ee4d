"""The side-by-side benchmark suite: PromptStream, Segment, PostHog and a floor, same event, same sink, same run.

    tox -e bench                       # or: python tests/benchmarks/run.py [--repeats 3] [--write-docs]

Each scenario runs in a fresh process per contender and repeat; the sink runs in its own process. Medians of the
repeats are reported as ratios, printed as a table and (with --write-docs) written to docs/benchmarks.md with a plot.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from contenders import IMPORT_NAMES, KEY  # noqa: E402
from figures import median_of, outage_medians  # noqa: E402

REPO = HERE.parent.parent
TRACKERS = ["promptstream", "segment", "posthog"]
BURST = 200_000
BACKLOG = 1_000_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running(command: list[str], ready: str, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert ready in line, f"{command[:3]} did not start: {line!r}"
        yield process
    finally:
        process.terminate()
        process.wait(10)


class Sink:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.http = httpx.Client(timeout=10)

    def reset(self) -> None:
        self.http.post(self.url + "/reset")

    def stats(self) -> dict[str, int]:
        return dict(self.http.get(self.url + "/stats").json())


def child(scenario: str, name: str, url: str, n: int, env: dict[str, str] | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-spool-") as spool:
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, str(HERE / "scenario.py"), scenario, name, url, spool, str(n)],
            capture_output=True,
            text=True,
            timeout=1200,
            env=env,
            check=False,
        )
        wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{scenario}/{name} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_s"] = wall
    return result


def sink_ceiling(sink: Sink, seconds: float = 3.0) -> float:
    """Events/s the sink accepts from two loopback senders posting ready-made 1000-event bodies."""
    event = {"event_id": "x", "type": "click", "label": "cta", "metadata": {"position": 1, "variant": "b", "i": 1}}
    body = json.dumps({"events": [dict(event, event_id=str(i)) for i in range(1000)]}).encode()
    sent = [0, 0]

    def post(slot: int) -> None:
        with httpx.Client() as http:
            deadline = time.perf_counter() + seconds
            while time.perf_counter() < deadline:
                http.post(sink.url + "/v1/events/batch", content=body, headers={"Content-Type": "application/json"})
                sent[slot] += 1000

    threads = [threading.Thread(target=post, args=(i,), name=f"bench-load-{i}") for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 30)
    return sum(sent) / seconds


def import_seconds(module: str, repeats: int = 9) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    runs = [
        float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
        for _ in range(repeats)
    ]
    return statistics.median(runs)


def measure(repeats: int) -> dict[str, Any]:
    results: dict[str, Any] = {"burst": {}, "steady": {}, "outage": {}, "construct": {}, "atexit": {}, "import": {}}
    port = free_port()
    with running([sys.executable, str(HERE / "sink.py"), str(port)], "ready"):
        sink = Sink(port)
        results["sink_ceiling"] = sink_ceiling(sink)
        print(f"sink ceiling: {results['sink_ceiling']:,.0f} events/s", flush=True)
        for name in ["floor", *TRACKERS]:
            runs = []
            for _ in range(repeats):
                sink.reset()
                run = child("burst", name, sink.url, BURST)
                counted = sink.stats()
                run.update(
                    delivered=counted["events"],
                    distinct=counted["distinct"],
                    wire_bytes_per_event=counted["wire_bytes"] / max(counted["events"], 1),
                )
                runs.append(run)
                print(f"burst {name}: {run}", flush=True)
            results["burst"][name] = runs
        for name in ["floor", *TRACKERS]:
            results["steady"][name] = [child("steady", name, sink.url, 0) for _ in range(repeats)]
            results["construct"][name] = [child("construct", name, sink.url, 0)]
            print(f"steady {name}: {results['steady'][name]}", flush=True)
        for name in TRACKERS:
            sink.reset()
            run = child("atexit", name, sink.url, 1000)
            run["distinct"] = sink.stats()["distinct"]
            results["atexit"][name] = [run]
            print(f"atexit {name}: {run}", flush=True)
    for name in TRACKERS:  # the sink is down; each child brings one up on its own port once the backlog is built
        results["outage"][name] = [
            child("outage", name, f"http://127.0.0.1:{free_port()}", BACKLOG) for _ in range(repeats)
        ]
        print(f"outage {name}: {results['outage'][name]}", flush=True)
    results["reference_server"] = reference_server_burst(repeats)
    for name in ["httpx", *TRACKERS]:
        results["import"][name] = import_seconds(IMPORT_NAMES[name])
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    results["commit"] = commit.stdout.strip() or "?"
    results["date"] = time.strftime("%Y-%m-%d")
    return results


def reference_server_burst(repeats: int) -> list[dict[str, Any]]:
    """PromptStream against the real reference server (validation, dedup, SQLite) instead of the counting sink."""
    from promptstream.server import Store

    runs = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="bench-server-") as tmp:
            db = Path(tmp) / "server.sqlite3"
            store = Store(db)
            prompt_id = store.create_prompt("default", "bench", "Hello {{name}}")["prompt_id"]
            store.close()
            port = free_port()
            serve = [sys.executable, "-m", "promptstream", "serve", "--port", str(port), "--db", str(db)]
            with running([*serve, "--api-key", KEY], "http://"):
                env = dict(os.environ, BENCH_PROMPT_ID=prompt_id)
                run = child("burst", "promptstream", f"http://127.0.0.1:{port}", BURST, env=env)
            run["stored"] = Store(db).count("events")
            runs.append(run)
            print(f"reference server: {run}", flush=True)
    return runs


def summarise(results: dict[str, Any]) -> list[tuple[str, ...]]:
    """Rows of (figure, promptstream, segment, posthog, floor, what the ratio says)."""
    burst = {name: runs for name, runs in results["burst"].items()}
    cost = {name: median_of(runs, "caller_s_per_call") for name, runs in burst.items()}
    rate = {}
    for name, runs in burst.items():
        rates = [r["distinct"] / r["until_acked_s"] for r in runs if name != "floor" and r["until_acked_s"]]
        rate[name] = statistics.median(rates) if rates else None
    rows: list[tuple[str, ...]] = []

    def fmt(value: float | None, unit: str = "", digits: int = 2) -> str:
        return "—" if value is None else f"{value:,.{digits}f}{unit}"

    ps = "promptstream"
    rows.append(
        (
            f"caller cost, {BURST:,}-call burst (µs/call)",
            *(fmt(cost[n] * 1e6 if cost[n] else None) for n in [*TRACKERS, "floor"]),
            f"{cost[ps] / cost['floor']:.1f}x floor; Segment {cost['segment'] / cost[ps]:.0f}x, "
            f"PostHog {cost['posthog'] / cost[ps]:.0f}x ours",
        )
    )
    for key, label in [("p50_us", "p50"), ("p99_us", "p99"), ("p999_us", "p99.9")]:
        per = {n: median_of(results["steady"][n], key) for n in [*TRACKERS, "floor"]}
        rows.append((f"per-call {label} at 5,000 calls/s (µs)", *(fmt(per[n]) for n in [*TRACKERS, "floor"]), ""))
    rows.append(
        (
            "end-to-end, acknowledged (events/s)",
            *(fmt(rate[n], digits=0) for n in TRACKERS),
            "—",
            f"{rate[ps] / rate['segment']:.0f}x Segment, {rate[ps] / rate['posthog']:.0f}x PostHog",
        )
    )
    dropped = {n: statistics.median(BURST - r["distinct"] for r in burst[n]) for n in TRACKERS}
    rows.append(("dropped of the burst (median)", *(f"{dropped[n]:,.0f}" for n in TRACKERS), "—", ""))
    cpu = {n: statistics.median(r["cpu_s"] / max(r["distinct"], 1) * 1e6 for r in burst[n]) for n in TRACKERS}
    rows.append(("CPU s per million delivered", *(fmt(cpu[n]) for n in TRACKERS), "—", ""))
    wire = {n: statistics.median(r.get("wire_bytes_per_event", 0) for r in burst[n]) for n in TRACKERS}
    rows.append(("bytes on the wire per event", *(fmt(wire[n], digits=0) for n in TRACKERS), "—", ""))
    outage = {n: outage_medians(results["outage"][n]) for n in TRACKERS}
    rows.append(
        (
            f"peak RSS above idle, {BACKLOG:,} events, server down (MiB)",
            *(fmt(outage[n]["peak_rss_mib"], digits=1) for n in TRACKERS),
            "—",
            "",
        )
    )
    rows.append(
        (
            "delivered of that backlog once the server is up",
            *(f"{outage[n]['outage_delivered']:,}" for n in TRACKERS),
            "—",
            "",
        )
    )
    rows.append(
        (
            "time to drain it (s)",
            *(fmt(outage[n]["drain_s"], digits=1) if outage[n]["drain_s"] else "> 120" for n in TRACKERS),
            "—",
            "",
        )
    )
    rows.append(
        (
            "bytes written to disk per spooled event",
            fmt(outage[ps]["disk_bytes_per_event"], digits=0),
            "no spool",
            "no spool",
            "—",
            "",
        )
    )
    imports = results["import"]
    rows.append(
        (
            "import time (ms)",
            *(fmt(imports[n] * 1e3, digits=1) for n in TRACKERS),
            f"httpx {imports['httpx'] * 1e3:.1f}",
            f"{imports[ps] / imports['httpx']:.2f}x httpx",
        )
    )
    construct = {n: results["construct"][n][0] for n in [*TRACKERS, "floor"]}
    rows.append(
        (
            "client construction (µs)",
            *(fmt(construct[n]["construct_s"] * 1e6, digits=0) for n in [*TRACKERS, "floor"]),
            "I/O in constructor: " + ", ".join(f"{n}: {construct[n]['construct_io'] or 'none'}" for n in TRACKERS),
        )
    )
    atexit = {n: results["atexit"][n][0] for n in TRACKERS}
    rows.append(
        (
            "short script, 1,000 events, atexit: delivered / wall s (one run)",
            *(f"{atexit[n]['distinct']:,} / {atexit[n]['wall_s']:.2f}" for n in TRACKERS),
            "—",
            "",
        )
    )
    server = results["reference_server"]
    rows.append(
        (
            "against the reference server: events/s stored",
            fmt(statistics.median(r["stored"] / r["until_acked_s"] for r in server), digits=0),
            "—",
            "—",
            "—",
            f"stored {statistics.median(r['stored'] for r in server):,.0f} of {BURST:,}",
        )
    )
    return rows


def table(rows: list[tuple[str, ...]]) -> str:
    header = ("", "PromptStream", "Segment", "PostHog", "floor", "ratio")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write-docs", action="store_true", help="write docs/benchmarks.md and docs/benchmarks.png")
    parser.add_argument("--from-json", type=Path, help="re-render a saved run instead of measuring")
    parser.add_argument("--quick", action="store_true", help="a 20k burst and a 50k backlog: to try the harness")
    args = parser.parse_args()
    if args.quick:
        global BURST, BACKLOG
        BURST, BACKLOG = 20_000, 50_000
    results = json.loads(args.from_json.read_text()) if args.from_json else measure(args.repeats)
    raw = REPO / "tests" / "benchmarks" / "last-run.json"
    raw.write_text(json.dumps(results, indent=1))
    rows = summarise(results)
    print(table(rows))
    if args.write_docs:
        from report import write_docs

        write_docs(results, table(rows), args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
