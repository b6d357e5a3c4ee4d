"""Writes docs/benchmarks.md and docs/benchmarks.png from one run's results (run.py --write-docs)."""

from __future__ import annotations

import datetime
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from contenders import version_of
from figures import outage_medians
from webapp.summary import carry_over

REPO = Path(__file__).resolve().parent.parent.parent
NAMES = {"promptstream": "PromptStream", "segment": "Segment", "posthog": "PostHog", "floor": "floor"}
COLOURS = {"promptstream": "#2b6cb0", "segment": "#52b788", "posthog": "#f4a261", "floor": "#999999"}


# What the profiles showed where a target is not met (measured on this machine, 2026-11-27; see the issue 5 note).
ANALYSIS = """### Where the unmet targets stand, and what it would take

Figures quoted here are from the run above (commit 465763d) unless they name another. Probes named below were run
separately on this machine, with the same event and the same loops.

- **40x lower caller cost than Segment and PostHog.** In this run, Segment's `track` cost its caller about 33 µs
  and PostHog's `capture` about 61 µs (the issue measured 124 µs and 220 µs here earlier). 40x below Segment is
  about 0.8 µs, which is the floor itself: it only builds the dict and appends it. No tracker that builds an event
  at all can get there. PromptStream is at 2.5x the floor.
- **p99 at a steady 5,000 calls/s.** The tail comes from any call that runs cold after a sleep, and it grows with
  the code the call runs, not with what the agent does. A probe (5,000 calls/s for 6 s, 3 rounds each) measured
  these p99s (at c222655; the call is unchanged since):

  | what one call does | p99 |
  |---|---|
  | nothing (an empty lambda) | 0.2 µs |
  | the floor: a dict appended to a deque | 4.5-7.7 µs |
  | `stamp_event()` alone: the event id and timestamp, a dozen lines | 9-18 µs |
  | `track_click` with the agent disabled (no queue, no threads) | 11-18 µs |
  | `track_click` with the agent running | 13-21 µs |

  The p99 of the same call moves by 10 µs from one repeat to the next (14, 26 and 24 µs in this run). What it
  would take: fewer instructions and less memory touched per call, in compiled code (validation, id, encoding),
  or moving validation out of the call, which the product rules out (bad input must fail at the call site).
- **20x Segment end-to-end.** Segment delivered about 27,000 events/s in this run, so 20x is about 540,000/s. Two
  bounds, both from this run, put that out of reach. First, the figure counts from the first call, and 200,000
  calls at 1.96 µs take 0.39 s, so even instant delivery gives at most 510,000/s. Second, delivery costs CPU:
  6.35 CPU seconds per million events delivered, caller included, and the machine has 2 cores, which the sink's
  process shares. So even with perfect use of both cores, the rate is at most about 315,000/s. PromptStream
  reached 137,000/s (5.1x Segment). What it would take: CPU per event cut to about 3.7 µs (2 cores / 540,000),
  caller included, and delivery spread over both cores past the GIL. After the burst, delivery costs about 6 ms per
  1,000-event batch (claim, gzip, POST, delete), and one sender thread runs them one at a time.
- **Peak RSS with a 1M-event backlog.** The median was 51 MiB (47.8, 51.0 and 59.0 in the 3 repeats; the run at
  f88d02b had 73.6). A profile of the tight loop (at c222655) found two causes, both now fixed:
  - **Checkpoints.** SQLite checkpointed the WAL inside every third append. Those appends took 60-74 ms instead of
    30-37 ms, and the queue grew by about 16,000 events each time, up to its 100,000 cap (about 33 MiB). Now the
    spooler checkpoints only while events arrive at under 100,000/s, measured over 50 ms. A first version that
    checkpointed whenever the queue ran dry misfired: the queue runs dry for a moment inside a burst, and that
    checkpoint owed about 150 MiB of WAL and took 200-330 ms.
  - **The chunk in flight.** The spooler held the 20,000 taken payloads (about 7 MiB) for the whole SQLite
    statement. Now it joins them into one buffer and lets go of them before the statement.

  Result: in a probe of the same loop with `max_spool_bytes` = 1 GiB (so that the cap does not drop events), 3 of
  3 runs spooled all 1,000,000, with 44-47 MiB peak RSS; at c222655, 4 runs dropped 115,000-309,000. With the
  default 128 MiB cap, the spool still holds the first 460,030 events, and the rest are dropped because the cap
  is full, not because of memory.

  What remains at the peak:
  - the queue, 15,000-47,000 events (5-16 MiB);
  - the chunk's buffer (5.8 MiB);
  - SQLite's copy of it, because Python's sqlite3 copies every bound blob, plus its page cache
    (`sqlite3_memory_highwater` 8.7-14.5 MiB);
  - what the allocators keep.

  Smaller chunks would shrink the middle two, but each SQLite statement costs the spooler one GIL hand-off (up to
  the 5 ms switch interval while the application thread computes). With 10,000- or 5,000-event chunks the
  spooler fell behind the loop, and the queue filled to its cap.

  What it would take: fewer statements per event, so that small chunks keep up. That means chunk rows: one row per
  chunk, with batches addressing events inside chunks, a spool schema v3. Measured at f6e7c8e, one row per chunk
  stored 20,000 events in 14 ms instead of 21; a prototype at 7a2aee6 (only `append` replaced) spooled all of a
  million but peaked at 80 MiB, since its chunk was still one bound blob. So chunk rows would also need a write
  whose memory does not grow with the chunk (incremental blob I/O, `blobopen`, Python 3.11+), or a spooler that
  does not need the GIL (native code).
  Compressed chunks would also fit a million of these events under the 128 MiB cap, if the compression runs where
  it does not starve the spooler (zlib on the spooler thread fell behind, at 7a2aee6). In ordinary traffic, the
  queue holds one spool interval of events, and a backlog lives on disk.

### Import time (met since f88d02b)

At f6e7c8e `import promptstream` cost 1.23x httpx's import. `-X importtime` showed what it added: msgspec 7.7 ms
(the models need it), sqlite3 3.7 ms (3.2 ms of it loading `_sqlite3`), platformdirs 2.6 ms, the agent's own
modules about 3 ms. Now the SQLite spool lives in its own module, which the agent imports when it opens the spool,
on its own thread; platformdirs is imported only to find the default spool directory, at construction; and gzip
bodies come from zlib, which httpx has imported already. `tests/test_architecture.py` keeps all three out of
`import promptstream`. The run above: 1.13x.
"""


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def plot(results: dict[str, Any], path: Path) -> None:
    trackers = ["promptstream", "segment", "posthog"]
    burst = results["burst"]
    cost = {n: statistics.median(r["caller_s_per_call"] for r in burst[n]) * 1e6 for n in [*trackers, "floor"]}
    rate = {
        n: statistics.median(r["distinct"] / r["until_acked_s"] for r in burst[n] if r["until_acked_s"])
        for n in trackers
    }
    kept = {n: statistics.median(r["distinct"] for r in burst[n]) / 2_000 for n in trackers}
    outage = {n: outage_medians(results["outage"][n]) for n in trackers}
    rss = {n: outage[n]["peak_rss_mib"] for n in trackers}
    kept_backlog = {n: outage[n]["outage_delivered"] for n in trackers}

    figure, axes = plt.subplots(1, 4, figsize=(16, 4.2))
    panels = [
        (axes[0], cost, [*trackers, "floor"], "caller cost per call (µs, log)", True),
        (axes[1], rate, trackers, "events/s acknowledged (log)", True),
        (axes[2], kept, trackers, "% of a 200k burst delivered", False),
        (axes[3], rss, trackers, "peak RSS, 1M events, server down (MiB)", False),
    ]
    for axis, values, names, title, log in panels:
        bars = axis.bar([NAMES[n] for n in names], [values[n] for n in names], color=[COLOURS[n] for n in names])
        axis.set_title(title, fontsize=10)
        if log:
            axis.set_yscale("log")
        for bar, name in zip(bars, names, strict=True):
            axis.annotate(
                f"{values[name]:,.3g}",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=9,
            )
        axis.tick_params(axis="x", labelsize=9)
    for bar, name in zip(axes[3].patches, trackers, strict=True):
        axes[3].annotate(
            f"kept {kept_backlog[name]:,}",
            (bar.get_x() + bar.get_width() / 2, bar.get_height() / 2),
            ha="center",
            fontsize=8,
            color="white",
        )
    figure.suptitle("PromptStream against Segment and PostHog: same event, same sink, same run (medians)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def targets(results: dict[str, Any]) -> str:
    """Issue 5's targets against this run, each with its verdict."""
    burst, trackers = results["burst"], ["segment", "posthog"]

    def median(runs: list[dict[str, Any]], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    cost = {n: median(burst[n], "caller_s_per_call") for n in ["promptstream", "floor", *trackers]}
    rate = {
        n: statistics.median(r["distinct"] / r["until_acked_s"] for r in burst[n] if r["until_acked_s"])
        for n in ["promptstream", *trackers]
    }
    p99 = median(results["steady"]["promptstream"], "p99_us")
    dropped = statistics.median(200_000 - r["distinct"] for r in burst["promptstream"])
    rss = outage_medians(results["outage"]["promptstream"])["peak_rss_mib"]
    imports = results["import"]["promptstream"] / results["import"]["httpx"]
    io = results["construct"]["promptstream"][0]["construct_io"]
    lower = min(cost[n] for n in trackers) / cost["promptstream"]
    rows = [
        (
            "caller cost <= 3x the floor",
            f"{cost['promptstream'] / cost['floor']:.1f}x",
            cost["promptstream"] <= 3 * cost["floor"],
        ),
        (
            "caller cost >= 40x lower than Segment's and PostHog's",
            f"{lower:.0f}x lower than the cheaper of them",
            lower >= 40,
        ),
        ("per-call p99 at 5,000 calls/s <= 10 us", f"{p99:.1f} us", p99 <= 10),
        ("end-to-end >= 100,000 events/s", f"{rate['promptstream']:,.0f} events/s", rate["promptstream"] >= 100_000),
        (
            "end-to-end >= 20x Segment",
            f"{rate['promptstream'] / rate['segment']:.1f}x",
            rate["promptstream"] >= 20 * rate["segment"],
        ),
        ("zero events dropped in a 200k burst", f"{dropped:,.0f} dropped (median)", dropped == 0),
        ("peak RSS with a 1M backlog <= 30 MiB above idle", f"{rss:.1f} MiB", rss <= 30),
        ("import promptstream <= 1.2x import httpx", f"{imports:.2f}x", imports <= 1.2),
        ("constructing a client does no I/O", "none seen" if not io else ", ".join(io), not io),
    ]
    lines = ["| target | this run | met |", "|---|---|---|"]
    lines += [f"| {name} | {value} | {'yes' if met else '**no**'} |" for name, value, met in rows]
    return "\n".join(lines)


def write_docs(results: dict[str, Any], table: str, repeats: int) -> None:
    plot(results, REPO / "docs" / "benchmarks.png")
    commit = (
        results.get("commit")
        or subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
    )
    versions = ", ".join(f"{NAMES.get(n, n)} {version_of(n)}" for n in ["promptstream", "segment", "posthog", "httpx"])
    text = f"""# Benchmarks

PromptStream's tracking agent against the two Python trackers people most often pick instead, measured side by
side: the same event (a user id, two ids, a label and a 3-field metadata dict), sent to the same loopback sink, on the
same machine, in the same run. Each contender runs in a fresh process per scenario and repeat; the sink runs in its
own process. Figures are medians of {repeats} repeats unless a row says otherwise. Absolute times on this shared
machine are noisy; compare within a row.

![PromptStream, Segment and PostHog side by side](benchmarks.png)

{table}

## Targets

{targets(results)}

{ANALYSIS}

## What each row measures

- **caller cost**: wall time of 200,000 back-to-back calls divided by 200,000, while the client's own threads run
  (the client was constructed 0.5 s earlier). The *floor* builds the same event as a dict and appends it to a
  `collections.deque`: what any tracker has to do at least.
- **per-call p50/p99/p99.9**: each call timed with `perf_counter_ns` at a steady 5,000 calls/s for 3 s (the caller
  sleeps between calls, as a request handler would); the timer's own overhead ({_timer(results)}) is subtracted.
- **end-to-end**: distinct events the sink counted, divided by the time from the first call until the client's own
  flush returned. **dropped**: of the 200,000, never reached the sink.
- **CPU s per million delivered**: user + system CPU of the client process over the burst and its delivery.
- **bytes on the wire**: request lines, headers and bodies the sink received, per delivered event.
- **peak RSS**: `VmHWM` minus `VmRSS` when idle, while 1,000,000 events are tracked as fast as possible with nothing
  listening; then the sink starts and we time the client's flush (cut off at 120 s).
- **bytes written to disk**: `wchar` of the process (all write syscalls) during that outage, per spooled event:
  the spool's write amplification (WAL frames, checkpoints, pages rewritten).
- **import time**: `import X` in a fresh interpreter, median of 9. **construction**: median of 10; the audit hook
  lists any file or socket the constructing thread opened.
- **short script**: a process that tracks 1,000 events and returns from `main` without calling flush or close.
- **against the reference server**: the same burst sent to `promptstream serve` (validation, dedup, SQLite) instead
  of the counting sink.
- The sink's ceiling, with two loopback senders posting ready-made 1,000-event bodies:
  {results["sink_ceiling"]:,.0f} events/s (the load generator, not the sink, is the limit there).

## Machine and versions

- {_cpu_model()}, {os.cpu_count()} cores, {platform.platform()}
- Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}; {versions}
- {results.get("date") or datetime.date.today().isoformat()}, commit {commit or "?"}; default settings everywhere
  except the host.

## Reproduce

```
tox -e bench                      # installs segment-analytics-python, posthog and matplotlib in its own venv
python tests/benchmarks/run.py --repeats 3 --write-docs    # the same, in an environment that has them
```

The raw figures of the last run are in `tests/benchmarks/last-run.json`; `run.py --from-json FILE` re-renders them.
"""
    page = REPO / "docs" / "benchmarks.md"
    # the web-app benchmark (webapp/bench.py) owns its own section of the page: keep it as it was
    page.write_text(carry_over(text, page.read_text() if page.exists() else ""))
    print(f"wrote docs/benchmarks.md and docs/benchmarks.png ({sys.executable})")


def _timer(results: dict[str, Any]) -> str:
    overheads = [r["timer_overhead_us"] for runs in results["steady"].values() for r in runs]
    return f"{statistics.median(overheads) * 1000:.0f} ns"
