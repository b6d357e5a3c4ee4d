"""On-demand: the caller's cost of track_click against the floor (build a small dict, append it to a deque),
in one run, with the agent running and the reference server up. Run: python tests/benchmarks/bench_track.py

Reports ratios, not absolute times: this machine is shared and noisy. The full side-by-side suite against
Segment and PostHog is issue 5's work.
"""

from __future__ import annotations

import collections
import statistics
import sys
import tempfile
import time
from pathlib import Path

from promptstream import PromptStreamClient
from promptstream.server import ServerThread, Store

N = 200_000
REPEATS = 5
KEY = "bench-key"


def floor_cost(n: int) -> float:
    sink: collections.deque[dict[str, object]] = collections.deque()
    append = sink.append
    start = time.perf_counter()
    for i in range(n):
        append({"prompt_run_id": "run", "experiment_id": "exp", "label": "cta", "metadata": {"a": 1, "b": "x", "c": i}})
    return (time.perf_counter() - start) / n


def track_cost(client: PromptStreamClient, run_id: str, experiment_id: str, n: int) -> float:
    track = client.track_click
    start = time.perf_counter()
    for i in range(n):
        track(run_id, experiment_id, "cta", metadata={"a": 1, "b": "x", "c": i})
    return (time.perf_counter() - start) / n


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "server.sqlite3")
        with ServerThread(store, [KEY]) as server:
            prompt = store.create_prompt("p", "Hi {{name}}")
            with PromptStreamClient(KEY, base_url=server.url, spool_dir=Path(tmp) / "spool") as client:
                run = client.run_prompt(prompt["prompt_id"], {"name": "x"})
                ratios, delivered = [], 0
                for _ in range(REPEATS):
                    floor = floor_cost(N)
                    cost = track_cost(client, run.run_id, run.experiment_id, N)
                    ratios.append(cost / floor)
                    start = time.perf_counter()
                    assert client.flush(timeout=120)
                    drain = time.perf_counter() - start
                    delivered = store.count("events")
                    print(
                        f"floor {floor * 1e6:.2f} us, track_click {cost * 1e6:.2f} us, ratio {cost / floor:.1f}x, "
                        f"drain after burst {drain:.1f} s, stored {delivered}",
                        flush=True,
                    )
                stats = client.stats()
        print(
            f"median ratio track_click/floor: {statistics.median(ratios):.1f}x over {REPEATS} runs of {N:,}; "
            f"tracked {stats.tracked:,}, stored {delivered:,}, dropped {stats.dropped}"
        )
        return 0 if delivered == stats.tracked else 1


if __name__ == "__main__":
    sys.exit(main())
