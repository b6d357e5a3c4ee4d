"""One scenario for one contender, in a fresh process (so no contender inherits another's threads, caches or heap).
Prints one JSON line of raw figures; run.py turns them into ratios.

    python tests/benchmarks/scenario.py SCENARIO CONTENDER SINK_URL SPOOL_DIR [N]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from contenders import CONTENDERS, Contender


def rss_kib(field: str = "VmRSS") -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


def written_chars() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise RuntimeError("wchar")


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def flush_with_deadline(contender: Contender, deadline: float) -> float | None:
    """Seconds the contender's own flush took, or None if it was still going after ``deadline`` seconds."""
    start = time.perf_counter()
    worker = threading.Thread(target=contender.flush, name="bench-flush", daemon=True)
    worker.start()
    worker.join(deadline)
    return None if worker.is_alive() else time.perf_counter() - start


def burst(contender: Contender, n: int) -> dict[str, Any]:
    track = contender.track
    cpu0, start = cpu_seconds(), time.perf_counter()
    for i in range(n):
        track(i)
    called = time.perf_counter()
    flushed = flush_with_deadline(contender, 300)
    cpu = cpu_seconds() - cpu0
    return {
        "caller_s_per_call": (called - start) / n,
        "until_acked_s": None if flushed is None else called - start + flushed,
        "cpu_s": cpu,
    }


def steady(contender: Contender, rate: int, seconds: float) -> dict[str, Any]:
    """Per-call latency at a steady rate: the caller sleeps between calls, as a request handler would."""
    clock = time.perf_counter_ns
    overhead = statistics.median(-(clock() - clock()) for _ in range(10_000))
    samples: list[int] = []
    track, period = contender.track, 1.0 / rate
    next_at = time.perf_counter()
    for i in range(int(rate * seconds)):
        next_at += period
        pause = next_at - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        begin = clock()
        track(i)
        samples.append(clock() - begin)
    contender.flush()
    samples.sort()

    def pct(q: float) -> float:
        return (samples[min(len(samples) - 1, int(q * len(samples)))] - overhead) / 1e3

    return {"p50_us": pct(0.50), "p99_us": pct(0.99), "p999_us": pct(0.999), "timer_overhead_us": overhead / 1e3}


def outage(contender: Contender, n: int, sink_port: int) -> dict[str, Any]:
    """The server is down while n events are tracked; then it comes up and we time the drain."""
    idle = rss_kib()
    wchar0 = written_chars()
    for i in range(n):
        contender.track(i)
    settle_deadline = time.monotonic() + 120
    client = getattr(contender, "client", None)
    while hasattr(client, "stats") and client.stats().queued and time.monotonic() < settle_deadline:
        time.sleep(0.05)  # PromptStream: let the spooler move everything to disk before we read the disk figures
    peak_mib = (rss_kib("VmHWM") - idle) / 1024
    spooled = client.stats().spooled if hasattr(client, "stats") else 0
    disk_bytes = written_chars() - wchar0
    sink = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "sink.py"), str(sink_port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
        drained = flush_with_deadline(contender, 120)
        stats = json.loads(_get(f"http://127.0.0.1:{sink_port}/stats"))
    finally:
        sink.terminate()
        sink.wait(10)
    return {
        "peak_rss_mib": peak_mib,
        "drain_s": drained,
        "outage_delivered": stats["distinct"],
        "disk_bytes_per_event": disk_bytes / spooled if spooled else None,
    }


def _get(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def construct(name: str, url: str, spool_dir: str) -> dict[str, Any]:
    """Construction time, and every file or socket the constructing thread opened (audit events)."""
    seen: list[str] = []
    constructing = threading.get_ident()
    watched = {"open", "socket.connect", "sqlite3.connect", "os.mkdir", "socket.bind"}

    def audit(event: str, args: tuple[Any, ...]) -> None:
        if event in watched and threading.get_ident() == constructing:
            seen.append(event)

    CONTENDERS[name](url, os.path.join(spool_dir, "warm-up")).close()  # imports are not construction
    times = []
    sys.addaudithook(audit)
    for round_ in range(10):
        start = time.perf_counter()
        contender = CONTENDERS[name](url, os.path.join(spool_dir, str(round_)))
        times.append(time.perf_counter() - start)
        counted = len(seen)
        contender.close()
        del seen[counted:]  # what close() did is not construction
    return {"construct_s": statistics.median(times), "construct_io": sorted(set(seen))}


def main() -> None:
    scenario, name, url, spool_dir = sys.argv[1:5]
    n = int(sys.argv[5]) if len(sys.argv) > 5 else 200_000
    if scenario == "construct":
        result = construct(name, url, spool_dir)
    else:
        contender = CONTENDERS[name](url, spool_dir)
        if scenario != "atexit":
            time.sleep(0.5)  # the burst hits a client that is already running, as in a server that has been up
        if scenario == "burst":
            result = burst(contender, n)
        elif scenario == "steady":
            result = steady(contender, rate=5_000, seconds=3)
        elif scenario == "outage":
            result = outage(contender, n, int(url.rsplit(":", 1)[1]))
        elif scenario == "atexit":
            for i in range(n):
                contender.track(i)
            print(json.dumps({}), flush=True)
            return  # no flush, no close: the interpreter's exit must deliver
        else:
            raise SystemExit(f"unknown scenario {scenario}")
        contender.close()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
