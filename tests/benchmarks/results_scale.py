"""Issue 17 §3: how long an experiment's results take to read at 1M and 10M stored events, SQLite and PostgreSQL.

For each backend: a real ``promptstream serve`` creates the schema, a prompt with two versions and a two-variant
experiment, and makes a few runs (which tell the variants' names and versions). The server stops; the database is
filled directly with SQL (faster than the wire by orders of magnitude, and the rows are the ones the server would
store): two runs per user, each user in one variant (sticky), latency and tokens per run, and ten events per run
(a multiplicative hash spreads them) of every type: 40 % clicks, 10 % conversions, 20 % feedback, 15 % ratings and
15 % engagement. The values are computed from the row's number, so both backends hold the same rows. The database
is analysed, the server starts again, and ``GET /v1/experiments/{id}/results`` and ``.../timeseries`` are read over
loopback: the first read (cold caches), then --repeats more (--largest-repeats at the largest size, where one read
may take minutes). The sizes grow in one database (1M, then 9M more rows for 10M).

    python tests/benchmarks/results_scale.py                      # 1M and 10M events, both backends
    python tests/benchmarks/results_scale.py --events 100000 --backends sqlite   # try it

PostgreSQL is the server PROMPTSTREAM_TEST_PG_URL names or a private cluster (tests/postgres.py): the Debian
package's defaults (shared_buffers 128 MB), with fsync, synchronous_commit and full_page_writes off. The rows go to
results-scale-last-run.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))
from server_scaling import HEADERS, serve, write_report  # noqa: E402

from tests.postgres import Cluster, start_cluster  # noqa: E402

EVENTS_PER_RUN = 10

# The generated rows, one SELECT per table over the numbers [start, stop); {n} is the row number, the rest is
# portable arithmetic so that both backends hold the same rows. Only the number source and the zero-padding differ.
_NUMBERS = {
    "sqlite": "(WITH RECURSIVE n(i) AS (SELECT {start} UNION ALL SELECT i + 1 FROM n WHERE i + 1 < {stop}) "
    "SELECT i FROM n)",
    "postgresql": "(SELECT generate_series({start}::bigint, {stop}::bigint - 1) AS i)",
}
_PAD = {"sqlite": "substr('000000000000' || {x}, -12)", "postgresql": "lpad(({x})::text, 12, '0')"}

RUNS_SQL = """
INSERT INTO runs (id, prompt_id, experiment_id, version, variant, external_user_id, output, created_at, project_id,
                  latency_ms, input_tokens, output_tokens, cost_usd)
SELECT 'run-' || {pad_i}, %(prompt)s, %(experiment)s,
    CASE WHEN ((i / 2) * 2654435761) % 2 = 0 THEN %(version_a)s ELSE %(version_b)s END,
    CASE WHEN ((i / 2) * 2654435761) % 2 = 0 THEN %(variant_a)s ELSE %(variant_b)s END,
    'user-' || {pad_user}, 'Hello', %(now)s - 86400.0 + (i % 86400), 'default',
    200.0 + (i * 7919) % 1000, 50 + i % 50, 20 + (i * 31) % 80, (70 + i % 50 + (i * 31) % 80) * 0.000001
FROM {numbers} AS n
"""

EVENTS_SQL = """
INSERT INTO events (event_id, type, prompt_run_id, experiment_id, timestamp, external_user_id, label, source,
                    metadata, thumbs_up, rating, engagement_score, received_at, project_id)
SELECT '00000000-0000-4000-8000-' || {pad_i}, kind, 'run-' || {pad_run}, %(experiment)s,
    '2026-12-01T12:00:00.000Z', NULL, NULL, NULL, NULL,
    CASE WHEN kind = 'feedback' THEN CASE WHEN i % 3 = 0 THEN 0 ELSE 1 END END,
    CASE WHEN kind = 'rating' THEN 1 + i % 5 END,
    CASE WHEN kind = 'engagement' THEN (i % 100) / 10.0 END,
    %(now)s - 86400.0 + (i % 86400), 'default'
FROM (SELECT i, (i * 2654435761) % %(runs)s AS run,
        CASE WHEN (i * 40503) % 100 < 40 THEN 'click' WHEN (i * 40503) % 100 < 50 THEN 'conversion'
             WHEN (i * 40503) % 100 < 70 THEN 'feedback' WHEN (i * 40503) % 100 < 85 THEN 'rating'
             ELSE 'engagement' END AS kind
      FROM {numbers} AS n) AS e
"""


def render(template: str, backend: str, start: int, stop: int, params: dict[str, Any]) -> tuple[str, Any]:
    pad = _PAD[backend]
    sql = template.format(
        numbers=_NUMBERS[backend].format(start=start, stop=stop),
        pad_i=pad.format(x="i"),
        pad_user=pad.format(x="i / 2"),
        pad_run=pad.format(x="run"),
    )
    if backend == "sqlite":  # named parameters: %(name)s -> :name
        return re.sub(r"%\((\w+)\)s", r":\1", sql), params
    return sql, params


def pg_sql(sql: str) -> str:
    """psycopg reads % as a placeholder: every modulo outside a placeholder is doubled."""
    return re.sub(r"%(?!\()", "%%", sql)


def set_up(url: str) -> dict[str, Any]:
    with httpx.Client(base_url=url, headers=HEADERS, timeout=30) as client:
        prompt = client.post("/v1/prompts", json={"name": "scale", "template": "Hello {{name}}"}).json()["prompt_id"]
        client.post(f"/v1/prompts/{prompt}/versions", json={"template": "Hi {{name}}!"}).raise_for_status()
        body = {"prompt_id": prompt, "variants": [{"version": 1}, {"version": 2}], "name": "scale"}
        experiment = client.post("/v1/experiments", json=body).json()["experiment_id"]
        seen: dict[str, int] = {}
        for user in range(40):
            run = client.post(
                f"/v1/prompts/{prompt}/runs", json={"inputs": {"name": "x"}, "external_user_id": f"setup-{user}"}
            ).json()
            seen[run["variant_assigned"]] = -1
        names = sorted(seen)
    return {"prompt": prompt, "experiment": experiment, "variants": names}


def fill(db: str, backend: str, setup: dict[str, Any], start: int, stop: int, versions: dict[str, int]) -> float:
    """Rows [start, stop) of events and [start/10, stop/10) of runs; the seconds it took, analysis included."""
    (variant_a, variant_b) = setup["variants"]
    params = {
        "prompt": setup["prompt"],
        "experiment": setup["experiment"],
        "variant_a": variant_a,
        "variant_b": variant_b,
        "version_a": versions[variant_a],
        "version_b": versions[variant_b],
        "now": time.time(),
        "runs": stop // EVENTS_PER_RUN,
    }
    run_start, run_stop = start // EVENTS_PER_RUN, stop // EVENTS_PER_RUN
    began = time.monotonic()
    chunk = 1_000_000
    if backend == "sqlite":
        with sqlite3.connect(db) as conn:
            conn.execute("PRAGMA synchronous = OFF")
            conn.execute(*render(RUNS_SQL, backend, run_start, run_stop, params))
            for low in range(start, stop, chunk):
                conn.execute(*render(EVENTS_SQL, backend, low, min(stop, low + chunk), params))
                conn.commit()
            conn.execute("ANALYZE")
            conn.commit()
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    else:
        import psycopg

        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("SET synchronous_commit = off")
            sql, _ = render(RUNS_SQL, backend, run_start, run_stop, params)
            conn.execute(pg_sql(sql).encode(), params)
            for low in range(start, stop, chunk):
                sql, _ = render(EVENTS_SQL, backend, low, min(stop, low + chunk), params)
                conn.execute(pg_sql(sql).encode(), params)
            conn.execute(b"VACUUM ANALYZE runs")
            conn.execute(b"VACUUM ANALYZE events")
    return time.monotonic() - began


def variant_versions(db: str, backend: str, experiment: str) -> dict[str, int]:
    sql = "SELECT DISTINCT variant, version FROM runs WHERE experiment_id = "
    if backend == "sqlite":
        with sqlite3.connect(db) as conn:
            return dict(conn.execute(sql + "?", (experiment,)).fetchall())
    import psycopg

    with psycopg.connect(db) as conn:
        return dict(conn.execute((sql + "%s").encode(), (experiment,)).fetchall())  # type: ignore[arg-type]


def timed_get(client: httpx.Client, path: str) -> tuple[float, dict[str, Any]]:
    began = time.perf_counter()
    response = client.get(path)
    elapsed = time.perf_counter() - began
    response.raise_for_status()
    return elapsed, dict(response.json())


def read(url: str, experiment: str, repeats: int) -> dict[str, Any]:
    with httpx.Client(base_url=url, headers=HEADERS, timeout=3600) as client:
        first, answer = timed_get(client, f"/v1/experiments/{experiment}/results")
        results = [timed_get(client, f"/v1/experiments/{experiment}/results")[0] for _ in range(repeats)]
        series = [timed_get(client, f"/v1/experiments/{experiment}/timeseries")[0] for _ in range(repeats)]
    variants = answer.get("variants", [])
    return {
        "results_first_s": first,
        "results_s": results,
        "timeseries_s": series,
        "runs_counted": sum(int(v.get("runs", 0)) for v in variants),
    }


def db_size(db: str, backend: str) -> int:
    if backend == "sqlite":
        return sum(p.stat().st_size for p in Path(db).parent.glob(Path(db).name + "*"))
    import psycopg

    with psycopg.connect(db) as conn:
        return int(conn.execute(b"SELECT pg_database_size(current_database())").fetchone()[0])  # type: ignore[index]


def measure(
    backend: str, sizes: list[int], cluster: Cluster | None, workdir: Path, repeats: int, largest_repeats: int
) -> list[dict[str, Any]]:
    db = cluster.create_database() if cluster is not None else str(workdir / "scale.db")
    rows = []
    try:
        with serve(db, 1, 1) as urls:
            setup = set_up(urls[0])
        versions = variant_versions(db, backend, setup["experiment"])
        filled = 0
        for size in sizes:
            fill_s = fill(db, backend, setup, filled, size, versions)
            filled = size
            with serve(db, 1, 1) as urls:
                url = urls[0]
                row = {"backend": backend, "events": size, "runs": size // EVENTS_PER_RUN, "fill_s": fill_s}
                row.update(read(url, setup["experiment"], repeats if size != sizes[-1] else largest_repeats))
            row["db_bytes"] = db_size(db, backend)
            row["load_avg_1m"] = os.getloadavg()[0]
            print(json.dumps(row), flush=True)
            rows.append(row)
    finally:
        if cluster is not None:
            cluster.drop_database(db)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", default="1000000,10000000", help="comma-separated sizes, ascending")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--repeats", type=int, default=3, help="reads after the first one")
    parser.add_argument("--largest-repeats", type=int, default=1, help="reads after the first, at the largest size")
    args = parser.parse_args()
    sizes = [int(size) for size in args.events.split(",")]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="promptstream-scale-") as workdir:
        for backend in args.backends.split(","):
            cluster = start_cluster() if backend == "postgresql" else None
            try:
                rows += measure(backend, sizes, cluster, Path(workdir), args.repeats, args.largest_repeats)
            finally:
                if cluster is not None:
                    cluster.stop()
    write_report("results-scale-last-run.json", args, rows)
    print("\n| backend | events | runs | results: first read | then, median (min-max) | time series, median | size |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        results, series = row["results_s"], row["timeseries_s"]
        print(
            f"| {row['backend']} | {row['events']:,} | {row['runs']:,} | {row['results_first_s']:.2f} s |"
            f" {statistics.median(results):.2f} s ({min(results):.2f}-{max(results):.2f}) |"
            f" {statistics.median(series):.2f} s | {row['db_bytes'] / 2**30:.2f} GiB |"
        )


if __name__ == "__main__":
    main()
