"""Issue 17 §3: events stored per second and runs per second by the reference server, SQLite (one process) against
PostgreSQL with 1, 2 and 4 workers and with two instances on one database, under wrk posting batches (a Lua script,
server_load.lua). On demand:

    tox -e bench-server                    # or: python tests/benchmarks/server_scaling.py [--repeats 3] [--duration 5]

PostgreSQL is the server PROMPTSTREAM_TEST_PG_URL names (an admin URL; a database is created per measurement) or a
private cluster started as the tests start one (tests/postgres.py). Every configuration is measured ``--repeats``
times, interleaved, each on a fresh database and fresh server processes; events/s counts what the database holds
after the run (not what wrk sent), runs/s the runs stored. The machine's load average is recorded with each repeat:
on a shared machine compare the ratios, not the absolute figures. Results go to server-last-run.json beside this file.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))
from tests.postgres import Cluster, start_cluster  # noqa: E402

KEY = "ps_bench_key_0123456789"
HEADERS = {"Authorization": f"Bearer {KEY}"}
_LISTENING = re.compile(r"server on (http://127\.0\.0\.1:\d+)")
# (name, backend, workers per instance, instances)
CONFIGS = [
    ("sqlite, 1 process", "sqlite", 1, 1),
    ("postgresql, 1 worker", "postgresql", 1, 1),
    ("postgresql, 2 workers", "postgresql", 2, 1),
    ("postgresql, 4 workers", "postgresql", 4, 1),
    ("postgresql, 2 instances x 1 worker", "postgresql", 1, 2),
]


def export(commit: str, into: Path) -> None:
    """The ``promptstream`` package as of ``commit``, into ``into`` (to put first on a server's PYTHONPATH)."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", commit, "promptstream"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)


def write_report(name: str, args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    """The raw rows beside the scripts, with the machine and the arguments that made them."""
    given = {name: value for name, value in vars(args).items() if name != "pythonpath"}  # a temporary directory
    report = {"machine": {"cpus": os.cpu_count(), "uname": " ".join(os.uname())}, "args": given, "rows": rows}
    (HERE / name).write_text(json.dumps(report, indent=1) + "\n")


@contextmanager
def serve(db: str, workers: int, instances: int, pythonpath: str = str(REPO)) -> Iterator[list[str]]:
    processes: list[subprocess.Popen[str]] = []
    urls: list[str] = []
    env = {**os.environ, "PYTHONPATH": pythonpath, "PROMPTSTREAM_SERVER_API_KEYS": KEY}
    try:
        for _ in range(instances):
            command = [sys.executable, "-m", "promptstream", "serve", "--port", "0", "--db", db]
            command += ["--workers", str(workers)]
            process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            processes.append(process)
            assert process.stdout is not None
            line = process.stdout.readline()
            match = _LISTENING.search(line)
            if match is None:
                raise RuntimeError(f"server did not start: {line!r}")
            urls.append(match.group(1))
        deadline = time.monotonic() + 60
        for url in urls:  # every worker up: a few answers in a row
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{url}/v1/prompts", headers=HEADERS, timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
        time.sleep(1.0 + 0.3 * workers)  # the workers' own start (fork, pool) before load
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()


def wrk(urls: list[str], mode: str, env: dict[str, str], duration: float, connections: int) -> list[dict[str, float]]:
    """One wrk per instance, at once, the connections split between them."""
    procs = []
    for seed, url in enumerate(urls, start=1):
        command = ["wrk", "-t1", f"-c{max(1, connections // len(urls))}", f"-d{int(duration)}s", "--timeout", "30s"]
        command += ["-s", str(HERE / "server_load.lua"), url]
        wrk_env = {**os.environ, **env, "PS_MODE": mode, "PS_KEY": KEY, "PS_SEED": str(seed * 7919 + os.getpid())}
        procs.append(
            subprocess.Popen(command, env=wrk_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        )
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=duration + 120)
        match = re.search(r"PS_RESULT (.*)", out)
        if match is None:
            raise RuntimeError(f"wrk failed: {out}")
        results.append({k: float(v) for k, v in (part.split("=") for part in match.group(1).split())})
    return results


def stored(db: str, table: str) -> int:
    if db.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(db) as conn:
            return int(conn.execute(f"SELECT COUNT(*) FROM {table}".encode()).fetchone()[0])  # type: ignore[index]
    with sqlite3.connect(db) as conn:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def measure(
    config: tuple[str, str, int, int], cluster: Cluster, workdir: Path, args: argparse.Namespace
) -> dict[str, Any]:
    name, backend, workers, instances = config
    db = cluster.create_database() if backend == "postgresql" else str(workdir / f"bench-{time.monotonic_ns()}.db")
    try:
        with serve(db, workers, instances, args.pythonpath) as urls:
            prompt = httpx.post(f"{urls[0]}/v1/prompts", json={"name": "b", "template": "Hi {{name}}"}, headers=HEADERS)
            prompt_id = prompt.json()["prompt_id"]
            made = httpx.post(f"{urls[0]}/v1/prompts/{prompt_id}/runs", json={"inputs": {"name": "x"}}, headers=HEADERS)
            env = {
                "PS_PROMPT": prompt_id,
                "PS_RUN": made.json()["run_id"],
                "PS_EXPERIMENT": made.json()["experiment_id"],
                "PS_BATCH": str(args.batch),
            }
            load = os.getloadavg()[0]
            events_before = stored(db, "events")
            started = time.monotonic()
            event_load = wrk(urls, "events", env, args.duration, args.connections)
            events = (stored(db, "events") - events_before) / (time.monotonic() - started)
            runs_before = stored(db, "runs")
            started = time.monotonic()
            run_load = wrk(urls, "runs", env, args.duration, args.connections)
            runs = (stored(db, "runs") - runs_before) / (time.monotonic() - started)
    finally:
        if backend == "postgresql":
            cluster.drop_database(db)
    errors = sum(r["errors"] + r["non2xx"] for r in event_load + run_load)
    return {
        "config": name,
        "events_per_s": events,
        "runs_per_s": runs,
        "batch_p99_ms": max(r["p99_ms"] for r in event_load),
        "run_p99_ms": max(r["p99_ms"] for r in run_load),
        "errors": errors,
        "load_avg_1m": load,
    }


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5.0, help="seconds of load per mode and repeat")
    parser.add_argument("--batch", type=int, default=100, help="events per batch (the SDK's default batch)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--configs", help="only the configurations whose name contains one of these (|-separated)")
    parser.add_argument("--against", help="an earlier commit: each configuration is measured on its server too")
    args = parser.parse_args()
    configs = [c for c in CONFIGS if not args.configs or any(part in c[0] for part in args.configs.split("|"))]
    cluster = start_cluster()
    rows: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="promptstream-bench-") as workdir:
            servers = [("", str(REPO))]
            if args.against:
                exported = Path(workdir) / args.against
                exported.mkdir()
                export(args.against, exported)
                servers.append((f" @ {args.against}", str(exported)))
            for repeat in range(args.repeats):
                order = servers if repeat % 2 == 0 else servers[::-1]  # alternate which goes first
                for index, (suffix, pythonpath) in enumerate(order * len(configs)):
                    config = configs[index // len(order)]
                    args.pythonpath = pythonpath
                    row = measure(config, cluster, Path(workdir), args)
                    row["config"] += suffix
                    row["repeat"] = repeat
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    finally:
        cluster.stop()
    write_report("server-last-run.json", args, rows)
    base = [r for r in rows if r["config"] == rows[0]["config"]]
    base_events = statistics.median(r["events_per_s"] for r in base)
    base_runs = statistics.median(r["runs_per_s"] for r in base)
    print(f"\n| configuration | events/s median (min-max) | x {rows[0]['config']} | runs/s median (min-max) | x it |"
          " load avg |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for name in dict.fromkeys(r["config"] for r in rows):
        mine = [r for r in rows if r["config"] == name]
        events = [r["events_per_s"] for r in mine]
        runs = [r["runs_per_s"] for r in mine]
        loads = [r["load_avg_1m"] for r in mine]
        print(
            f"| {name} | {spread(events)} | {statistics.median(events) / base_events:.2f} | {spread(runs)} |"
            f" {statistics.median(runs) / base_runs:.2f} | {min(loads):.1f}-{max(loads):.1f} |"
        )


if __name__ == "__main__":
    main()
