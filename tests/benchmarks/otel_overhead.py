"""What the OpenTelemetry integration costs the hot path and the import, before and after, in one run.

    python tests/benchmarks/otel_overhead.py [--before DIR] [--repeats 7] [--calls 200000] [--burst]

Each measurement runs in a fresh process; the variants are interleaved repeat by repeat, so machine noise hits
them alike. ``track_click`` (the benchmarks' event: ids, a label, a user id, a 3-field metadata dict) goes to a
disabled client's queue stand-in, so the figure is the call itself (validation, the event, its encoding), not the
agent: the floor (contenders.Floor: build the dict, append it to a deque) runs beside it. ``--before DIR`` is a
checkout of the code before the integration (``git archive main | tar -x -C DIR``).

``--burst`` measures instead with the suite's own ``burst`` scenario (scenario.py: 100,000 ``track_click`` calls to
a running agent, the suite's sink), floor / before / after, interleaved.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

HERE = Path(__file__).parent
REPO = HERE.parent.parent

_TRACK = """
import json, sys, time
sys.path.insert(0, {here!r})
from contenders import EXPERIMENT_ID, RUN_ID, USER_ID, Floor
started = time.perf_counter()
import promptstream
import_s = time.perf_counter() - started
variant = {variant!r}
if variant == "floor":
    track = Floor("", "").track
else:
    options = {{}}
    if variant.startswith("otel"):
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from promptstream.otel import OpenTelemetry
        trace.set_tracer_provider(TracerProvider())
        options["instrumentation"] = OpenTelemetry()
    client = promptstream.PromptStreamClient("bench-key", disabled=True, **options)
    click = client.track_click
    def track(i):
        click(RUN_ID, EXPERIMENT_ID, "cta", USER_ID, metadata={{"position": 1, "variant": "b", "i": i}})
span = None
if variant == "otel_in_span":
    span = trace.get_tracer("bench").start_as_current_span("request")
    span.__enter__()
n = {calls}
for i in range(20_000):
    track(i)
clock = time.perf_counter_ns
# the best of 40 batches: a batch another process's burst slowed down says nothing about the call
batches = []
for _ in range(40):
    start = clock()
    for i in range(n // 40):
        track(i)
    batches.append((clock() - start) / (n // 40))
print(json.dumps({{"per_call_ns": min(batches), "import_s": import_s}}))
"""


def measure(variant: str, code_root: Path, calls: int) -> dict[str, float]:
    code = _TRACK.format(here=str(HERE), variant=variant, calls=calls)
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(code_root), "PATH": "/usr/bin:/bin"},
        cwd=str(code_root),
    )
    result: dict[str, float] = json.loads(done.stdout)
    return result


def burst_rounds(before: Path | None, repeats: int, calls: int) -> dict[str, list[float]]:
    sys.path.insert(0, str(HERE))
    from run import free_port, running

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    roots = [("floor", "floor", REPO), *([("before", "promptstream", before)] if before else [])]
    roots.append(("after, no instrumentation", "promptstream", REPO))
    figures: dict[str, list[float]] = {label: [] for label, _, _ in roots}
    with running([sys.executable, str(HERE / "sink.py"), str(port)], "ready"):
        for _ in range(repeats):
            for label, name, root in roots:
                with tempfile.TemporaryDirectory(prefix="bench-spool-") as spool:
                    done = subprocess.run(
                        [sys.executable, str(HERE / "scenario.py"), "burst", name, url, spool, str(calls)],
                        capture_output=True,
                        text=True,
                        check=True,
                        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
                    )
                result = json.loads(done.stdout.strip().splitlines()[-1])
                figures[label].append(result["caller_s_per_call"] * 1e9)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", type=Path, help="a checkout of the code before the integration")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--burst", action="store_true", help="the suite's burst scenario, floor/before/after")
    args = parser.parse_args()
    if args.burst:
        figures = burst_rounds(args.before, args.repeats, args.calls)
        floors = figures["floor"]
        print(f"{'variant':30} {'median ns/call':>15} {'min..max':>17} {'ratio to floor, median (range)':>32}")
        for label, values in figures.items():
            ratios = [v / f for v, f in zip(values, floors, strict=True)]
            print(
                f"{label:30} {statistics.median(values):15.0f} {min(values):8.0f}..{max(values):<8.0f}"
                f" {statistics.median(ratios):10.2f}x ({min(ratios):.2f}..{max(ratios):.2f}x)"
            )
        return
    variants: list[tuple[str, str, Path]] = [("floor", "floor", REPO)]
    if args.before is not None:
        variants.append(("before", "plain", args.before))
    variants += [
        ("after, no instrumentation", "plain", REPO),
        ("after, instrumented, no span", "otel", REPO),
        ("after, instrumented, in a span", "otel_in_span", REPO),
    ]
    results: dict[str, list[dict[str, float]]] = {label: [] for label, _, _ in variants}
    for _ in range(args.repeats):
        for label, variant, root in variants:
            results[label].append(measure(variant, root, args.calls))
    floor = statistics.median(r["per_call_ns"] for r in results["floor"])
    print(f"{'variant':34} {'median ns/call':>15} {'min..max':>17} {'over floor':>11} {'import ms':>10}")
    for label, runs in results.items():
        per_call = [r["per_call_ns"] for r in runs]
        imports = [r["import_s"] * 1000 for r in runs]
        median = statistics.median(per_call)
        print(
            f"{label:34} {median:15.0f} {min(per_call):8.0f}..{max(per_call):<8.0f} {median - floor:11.0f}"
            f" {statistics.median(imports):10.1f}"
        )


if __name__ == "__main__":
    main()
