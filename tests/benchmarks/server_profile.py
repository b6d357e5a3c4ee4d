"""Issue 17 §3: where the reference server's time goes under load, SQLite against PostgreSQL.

One ``promptstream serve`` per backend (one worker), loaded by wrk as server_scaling.py loads it (100-event batches,
then runs), each phase sampled by py-spy (``py-spy record --format raw``: the stacks of threads that are running,
idle ones left out; ``--gil`` to keep only those holding the GIL). The stacks are summed per frame: the table shows,
per phase, the share of samples in which a function is on the stack (inclusive) for the frames that matter, and
the functions with the most samples at the top of the stack (self).

    pip install py-spy        # then, as root or with ptrace allowed:
    python tests/benchmarks/server_profile.py [--duration 10] [--gil]

The raw stacks go to a temporary directory, the summary to server-profile-last-run.json beside this file.
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
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))
from server_scaling import HEADERS, serve, wrk  # noqa: E402

from tests.postgres import start_cluster  # noqa: E402

TOP = 12


def record(py_spy: str, pid: int, seconds: float, out: Path, gil: bool) -> subprocess.Popen[bytes]:
    command = [py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "200"]
    command += ["--format", "raw", "--output", str(out), "--subprocesses", "--nonblocking"]
    if gil:
        command.append("--gil")
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def server_pids() -> list[int]:
    """The pids of the `promptstream serve` processes this script started (their parent is us)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == os.getpid() and b"serve" in cmdline:
            found.append(int(entry.name))
    return found


def summarise(raw: Path) -> dict[str, Any]:
    """Inclusive and self shares of samples per function, from py-spy's collapsed stacks."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [frame.split(" (")[0] + " (" + frame.split(" (")[-1].split(":")[0].rsplit("/", 1)[-1] + ")"
                  for frame in stack.split(";")[1:]]  # fmt: skip
        total += count
        for frame in set(frames):
            inclusive[frame] += count
        if frames:
            own[frames[-1]] += count
    return {
        "samples": total,
        "inclusive": [(frame, round(100 * n / total, 1)) for frame, n in inclusive.most_common(40)],
        "self": [(frame, round(100 * n / total, 1)) for frame, n in own.most_common(TOP)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load (and sampling) per phase")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--gil", action="store_true", help="only samples that hold the GIL")
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy")
    args = parser.parse_args()
    cluster = start_cluster()
    summary: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="promptstream-profile-") as workdir:
            for backend in ("sqlite", "postgresql"):
                db = cluster.create_database() if backend == "postgresql" else str(Path(workdir) / "profile.db")
                try:
                    with serve(db, 1, 1) as urls:
                        url = urls[0]
                        made = httpx.post(f"{url}/v1/prompts", json={"name": "b", "template": "Hi {{name}}"},
                                          headers=HEADERS)  # fmt: skip
                        prompt_id = made.json()["prompt_id"]
                        run = httpx.post(f"{url}/v1/prompts/{prompt_id}/runs", json={"inputs": {"name": "x"}},
                                         headers=HEADERS).json()  # fmt: skip
                        env = {"PS_PROMPT": prompt_id, "PS_RUN": run["run_id"],
                               "PS_EXPERIMENT": run["experiment_id"], "PS_BATCH": str(args.batch)}  # fmt: skip
                        (pid,) = server_pids()
                        for mode in ("events", "runs"):
                            raw = Path(workdir) / f"{backend}-{mode}.txt"
                            sampler = record(args.py_spy, pid, args.duration - 1, raw, args.gil)
                            time.sleep(0.5)
                            load = wrk([url], mode, env, args.duration, args.connections)
                            _, errors = sampler.communicate(timeout=60)
                            if not raw.exists():
                                raise RuntimeError(f"py-spy wrote nothing: {errors.decode()[-2000:]}")
                            summary[f"{backend} {mode}"] = {"wrk": load, **summarise(raw)}
                            print(f"\n== {backend}, {mode}: {load}", flush=True)
                            for frame, share in summary[f"{backend} {mode}"]["self"]:
                                print(f"  self {share:5.1f} %  {frame}")
                finally:
                    if backend == "postgresql":
                        cluster.drop_database(db)
    finally:
        cluster.stop()
    report = {"machine": {"cpus": os.cpu_count()}, "args": vars(args), "phases": summary}
    (HERE / "server-profile-last-run.json").write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
