"""Issue 17 §3: a run's latency, p50 and p99, alone and under a concurrent flood of event batches, before and after
the event-loop fix (f4c7fd2: the store's work on a thread pool, the model call outside the lock; before it, every
SQLite call ran on the event loop under one lock).

Servers (--servers): by default 726ee24 (the commit before the fix; its package exported with ``git archive`` and
put first on PYTHONPATH), on SQLite, and this tree on SQLite and on PostgreSQL; any commit since 4f81acd can be
measured on either backend. Each
repeat runs every server once, their order rotating, each on a fresh database and a fresh process:

  1. alone: runs at --rate per second for --duration seconds, each sent when it is due from a pool of 64
     connections (a slow answer never holds back the next run) and timed from then: no coordinated omission;
  2. flooded: the same, while wrk posts 100-event batches with --connections connections (server_load.lua).

With --model-ms, the servers' model takes that long per call (slow_model_server.py: a sleep, as a network call to a
model would; the reference server's own offline model answers at once), which is what the fix was for: before it,
a run's model call held the store's lock on the event loop.

    python tests/benchmarks/run_latency.py [--repeats 3] [--duration 10] [--rate 20] [--model-ms 200]
    python tests/benchmarks/run_latency.py --servers 4078964:sqlite,tree:sqlite,4078964:postgresql,tree:postgresql

The rows go to run-latency-last-run.json beside this file.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))
from server_scaling import HEADERS, KEY, export, write_report  # noqa: E402

from tests.helpers import free_port  # noqa: E402
from tests.postgres import Cluster, start_cluster  # noqa: E402

BEFORE = "726ee24"


@contextmanager
def serve(pythonpath: str, db: str, model_ms: float) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": pythonpath, "PROMPTSTREAM_SERVER_API_KEYS": KEY}
    command = [sys.executable, "-m", "promptstream", "serve", "--port", str(port), "--db", db]
    if model_ms > 0:
        command = [sys.executable, str(HERE / "slow_model_server.py"), str(port), db, str(model_ms), KEY]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/v1/prompts", headers=HEADERS, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"the server on {db} did not start")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            process.kill()


def paced_runs(url: str, prompt_id: str, rate: float, duration: float, tag: str) -> list[float]:
    """Latencies (ms) of runs due every 1/rate s, each sent when due (from a pool of connections, so a slow answer
    never holds back the next run) and measured from when it was due."""

    def one(client: httpx.Client, k: int, due: float) -> float:
        body = {"inputs": {"name": "x"}, "external_user_id": f"{tag}-{k}"}
        client.post(f"/v1/prompts/{prompt_id}/runs", json=body).raise_for_status()
        return (time.perf_counter() - due) * 1e3

    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    client = httpx.Client(base_url=url, headers=HEADERS, timeout=120, limits=limits)
    with client, ThreadPoolExecutor(64, thread_name_prefix="bench-run") as pool:
        futures = []
        start = time.perf_counter()
        for k in range(int(rate * duration)):
            due = start + k / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            futures.append(pool.submit(one, client, k, due))
        return [future.result() for future in futures]


def flood(url: str, env: dict[str, str], duration: float, connections: int, out: dict[str, float]) -> None:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{int(duration)}s", "--timeout", "30s"]
    command += ["-s", str(HERE / "server_load.lua"), url]
    wrk_env = {**os.environ, **env, "PS_MODE": "events", "PS_KEY": KEY, "PS_SEED": str(os.getpid())}
    done = subprocess.run(command, env=wrk_env, capture_output=True, text=True, timeout=duration + 120)
    match = re.search(r"PS_RESULT (.*)", done.stdout)
    if match is None:
        raise RuntimeError(f"wrk failed: {done.stdout} {done.stderr}")
    out.update({k: float(v) for k, v in (part.split("=") for part in match.group(1).split())})


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(label: str, pythonpath: str, db: str, args: argparse.Namespace) -> dict[str, Any]:
    with serve(pythonpath, db, args.model_ms) as url:
        made = httpx.post(f"{url}/v1/prompts", json={"name": "b", "template": "Hi {{name}}"}, headers=HEADERS)
        prompt_id = made.json()["prompt_id"]
        run = httpx.post(f"{url}/v1/prompts/{prompt_id}/runs", json={"inputs": {"name": "x"}}, headers=HEADERS).json()
        alone = paced_runs(url, prompt_id, args.rate, args.duration, "alone")
        env = {"PS_PROMPT": prompt_id, "PS_RUN": run["run_id"], "PS_EXPERIMENT": run["experiment_id"]}
        env["PS_BATCH"] = "100"
        wrk_result: dict[str, float] = {}
        load = threading.Thread(
            target=flood, args=(url, env, args.duration + 2, args.connections, wrk_result), name="bench-flood"
        )
        load.start()
        time.sleep(1.0)  # the flood under way before the first run
        flooded = paced_runs(url, prompt_id, args.rate, args.duration, "flooded")
        load.join()
    return {
        "server": label,
        "alone_p50_ms": percentile(alone, 0.5),
        "alone_p99_ms": percentile(alone, 0.99),
        "flooded_p50_ms": percentile(flooded, 0.5),
        "flooded_p99_ms": percentile(flooded, 0.99),
        "flooded_max_ms": max(flooded),
        "batches_per_s": wrk_result.get("requests", 0.0) / (args.duration + 2),
        "batch_p99_ms": wrk_result.get("p99_ms", 0.0),
        "wrk_errors": wrk_result.get("errors", 0.0) + wrk_result.get("non2xx", 0.0),
        "load_avg_1m": os.getloadavg()[0],
    }


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):,.1f} ({min(values):,.1f}-{max(values):,.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of runs per phase")
    parser.add_argument("--rate", type=float, default=20.0, help="runs per second")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections posting batches")
    parser.add_argument(
        "--model-ms", type=float, default=0, help="a model that takes this long per call (slow_model_server.py)"
    )
    parser.add_argument(
        "--servers",
        default=f"{BEFORE}:sqlite,tree:sqlite,tree:postgresql",
        help="comma-separated COMMIT:BACKEND (COMMIT 'tree' is the working tree; BACKEND sqlite or postgresql)",
    )
    args = parser.parse_args()
    cluster: Cluster | None = start_cluster() if "postgresql" in args.servers else None
    rows: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="promptstream-latency-") as workdir:
            servers = []
            for spec in args.servers.split(","):
                commit, _, backend = spec.partition(":")
                if commit == "tree":
                    servers.append((f"this tree, {backend}", str(REPO), backend))
                    continue
                exported = Path(workdir) / commit
                if not exported.exists():
                    exported.mkdir()
                    export(commit, exported)
                servers.append((f"{commit}, {backend}", str(exported), backend))
            for repeat in range(args.repeats):
                for index in range(len(servers)):
                    label, pythonpath, backend = servers[(index + repeat) % len(servers)]
                    if backend == "postgresql":
                        assert cluster is not None
                        db = cluster.create_database()
                    else:
                        db = str(Path(workdir) / f"latency-{time.monotonic_ns()}.db")
                    try:
                        row = measure(label, pythonpath, db, args)
                    finally:
                        if cluster is not None and backend == "postgresql":
                            cluster.drop_database(db)
                    row["repeat"] = repeat
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    finally:
        if cluster is not None:
            cluster.stop()
    write_report("run-latency-last-run.json", args, rows)
    print("\n| server | alone p50 ms | alone p99 ms | flooded p50 ms | flooded p99 ms | batches/s | load avg |")
    print("|---|---|---|---|---|---|---|")
    for label in dict.fromkeys(row["server"] for row in rows):
        mine = [row for row in rows if row["server"] == label]
        cells = [spread([row[key] for row in mine]) for key in ("alone_p50_ms", "alone_p99_ms")]
        cells += [spread([row[key] for row in mine]) for key in ("flooded_p50_ms", "flooded_p99_ms", "batches_per_s")]
        loads = [row["load_avg_1m"] for row in mine]
        print(f"| {label} | {' | '.join(cells)} | {min(loads):.1f}-{max(loads):.1f} |")


if __name__ == "__main__":
    main()
