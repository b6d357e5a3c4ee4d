"""The web-app benchmark's figures: medians and ranges over the rounds, the markdown tables, the plot, and the section
of docs/benchmarks.md they go into (between two markers, which report.py carries over when it rewrites the page)."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent.parent.parent
DOCS_PAGE = REPO / "docs" / "benchmarks.md"
PLOT = REPO / "docs" / "benchmarks-webapp.png"
BEGIN, END = "<!-- webapp-benchmark:begin -->", "<!-- webapp-benchmark:end -->"
VARIANTS = ["none", "promptstream", "segment", "posthog"]
NAMES = {"none": "no tracking", "promptstream": "PromptStream", "segment": "Segment", "posthog": "PostHog"}
COLOURS = {"none": "#999999", "promptstream": "#2b6cb0", "segment": "#52b788", "posthog": "#f4a261"}
APP_TITLES = {
    "flask": "Flask under gunicorn (2 sync workers, --preload)",
    "fastapi": "FastAPI under uvicorn (2 workers; PromptStream's and PostHog's async clients)",
}

EN_DASH, MINUS = "\u2013", "\u2212"  # typographic, as in the table
Figure = Callable[[dict[str, Any]], float | None]


FIGURES: dict[str, Figure] = {
    "req_s": lambda run: run["peak"]["req_s"],
    "p50_ms": lambda run: run["peak"]["p50_us"] / 1e3,
    "p90_ms": lambda run: run["peak"]["p90_us"] / 1e3,
    "p99_ms": lambda run: run["peak"]["p99_us"] / 1e3,
    "cpu_ms": lambda run: run["peak"]["cpu_ms_per_request"],
    "track_us": lambda run: run["peak"]["track_mean_us"],
    "track_p99_us": lambda run: run["peak"]["track_p99_us"],
    "rss_mib": lambda run: run["rss_mib"],
    "pss_mib": lambda run: run["pss_mib"],
    "paced_req_s": lambda run: run["paced"]["achieved_rate"],
    "paced_p50_ms": lambda run: run["paced"]["p50_ms"],
    "paced_p90_ms": lambda run: run["paced"]["p90_ms"],
    "paced_p99_ms": lambda run: run["paced"]["p99_ms"],
    "paced_p999_ms": lambda run: run["paced"]["p999_ms"],
    "paced_cpu_ms": lambda run: run["paced"]["cpu_ms_per_request"],
    "paced_track_us": lambda run: run["paced"]["track_mean_us"],
    "paced_lag_ms": lambda run: run["paced"]["generator_lag_p99_ms"],
}


def spread(runs: list[dict[str, Any]], figure: str) -> tuple[float, float, float] | None:
    """(median, lowest, highest) of one figure over the runs that have it."""
    values = [value for value in map(FIGURES[figure], runs) if value is not None]
    return (statistics.median(values), min(values), max(values)) if values else None


def _cell(value: tuple[float, float, float] | None, digits: int, base: tuple[float, float, float] | None = None) -> str:
    if value is None:
        return EN_DASH
    median, low, high = value
    text = f"{median:,.{digits}f}"
    if base is not None and base[0]:
        text += f" ({(median / base[0] - 1) * 100:+.0f} %)".replace("-", MINUS)
    if high > low:
        text += f"<br><small>{low:,.{digits}f}{EN_DASH}{high:,.{digits}f}</small>"
    return text


def _runs(results: dict[str, Any], app: str, variant: str) -> list[dict[str, Any]]:
    return [run for run in results["runs"] if run["app"] == app and run["variant"] == variant]


def app_tables(results: dict[str, Any], app: str) -> str:
    config = results["config"]
    variants = [v for v in results["variants"] if _runs(results, app, v)]
    by = {v: _runs(results, app, v) for v in variants}
    base = by.get("none")

    def row(variant: str, columns: list[tuple[str, int, bool]]) -> str:
        cells = [
            _cell(
                spread(by[variant], figure),
                digits,
                spread(base, figure) if relative and base and variant != "none" else None,
            )
            for figure, digits, relative in columns
        ]
        return f"| {NAMES[variant]} | " + " | ".join(cells) + " |"

    peak_columns = [
        ("req_s", 0, True),
        ("p50_ms", 1, False),
        ("p90_ms", 1, False),
        ("p99_ms", 1, True),
        ("cpu_ms", 2, True),
        ("track_us", 0, False),
        ("track_p99_us", 0, False),
        ("rss_mib", 0, False),
        ("pss_mib", 0, False),
    ]
    paced_columns = [
        ("paced_req_s", 0, False),
        ("paced_p50_ms", 1, False),
        ("paced_p90_ms", 1, False),
        ("paced_p99_ms", 1, True),
        ("paced_p999_ms", 1, False),
        ("paced_cpu_ms", 2, True),
        ("paced_track_us", 0, False),
        ("paced_lag_ms", 1, False),
    ]
    wrk = f"wrk -t{config['threads']} -c{config['connections']} -d{config['duration']:g}s"
    lines = [
        f"#### {APP_TITLES[app]}",
        "",
        f"Maximum throughput ({wrk}):",
        "",
        "| variant | req/s | p50 ms | p90 ms | p99 ms | app CPU per request (ms) | time in the 3 track calls, mean µs"
        " | its p99 µs | RSS MiB | PSS MiB |",
        "|---|" + "---:|" * len(peak_columns),
        *(row(v, peak_columns) for v in variants),
        "",
        f"Fixed rate ({config['rate']:g} requests/s for {config['paced_duration']:g} s, {config['connections']}"
        " connections, latency from the intended send time):",
        "",
        "| variant | achieved req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | app CPU per request (ms)"
        " | time in the 3 track calls, mean µs | generator's own lag, p99 ms |",
        "|---|" + "---:|" * len(paced_columns),
        *(row(v, paced_columns) for v in variants),
        "",
        "Delivery (summed over the rounds; delivered = distinct event ids at the sink after the drain and the"
        " shutdown):",
        "",
        "| variant | tracked | delivered | missing | duplicates sent | runs exact |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for variant in variants:
        if variant == "none":
            continue
        runs = by[variant]
        tracked = sum(run["tracked"] for run in runs)
        delivered = sum(run["delivered"] for run in runs)
        duplicates = sum(run["duplicates"] for run in runs)
        exact = sum(run["delivered"] == run["tracked"] and not run["duplicates"] for run in runs)
        lines.append(
            f"| {NAMES[variant]} | {tracked:,} | {delivered:,} | {tracked - delivered:,} | {duplicates:,}"
            f" | {exact} of {len(runs)} |"
        )
    problems = [
        f"{NAMES[run['variant']]} round {run['round'] + 1}: "
        + ", ".join(
            f"{what} {count}"
            for what, count in [
                ("wrk errors", run["peak"]["errors"]),
                ("paced errors", run["paced"]["errors"] + run["paced"]["non_200"] + run["paced"]["unfinished"]),
                ("a worker restarted", int(run["worker_restarted"])),
            ]
            if count
        )
        for run in results["runs"]
        if run["app"] == app
        and (run["peak"]["errors"] or run["paced"]["errors"] + run["paced"]["non_200"] or run["worker_restarted"])
    ]
    if problems:
        lines += ["", "Errors seen: " + "; ".join(problems) + "."]
    return "\n".join(lines)


def markdown(results: dict[str, Any]) -> str:
    config = results["config"]
    header = (
        f"Medians of {config['rounds']} interleaved round(s); the small line under a figure is its range over the"
        " rounds; the percentage is against no tracking in the same app."
        f" Commit {results.get('commit', '?')}, {results.get('date', '?')}."
    )
    if "machine" in results:
        header += " " + "; ".join(results["machine"].values()) + "."
    return "\n\n".join([header, *(app_tables(results, app) for app in results["apps"])])


def _short(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("req_s", "req/s at maximum load"),
        ("p99_ms", "p99 ms at maximum load"),
        ("cpu_ms", "app CPU ms per request"),
        ("paced_p99_ms", f"p99 ms at {results['config']['rate']:g} req/s"),
    ]
    apps = results["apps"]
    figure, axes = plt.subplots(len(apps), len(panels), figsize=(16, 3.8 * len(apps)), squeeze=False)
    for row, app in enumerate(apps):
        variants = [v for v in results["variants"] if _runs(results, app, v)]
        for column, (key, title) in enumerate(panels):
            axis = axes[row][column]
            values = [spread(_runs(results, app, v), key) or (0.0, 0.0, 0.0) for v in variants]
            medians = [value[0] for value in values]
            errors = [[m - low for m, low, _ in values], [high - m for m, _, high in values]]
            bars = axis.bar(
                [NAMES[v] for v in variants], medians, yerr=errors, capsize=4, color=[COLOURS[v] for v in variants]
            )
            for bar, median in zip(bars, medians, strict=True):
                top = (bar.get_x() + bar.get_width() / 2, bar.get_height())
                axis.annotate(_short(median), top, ha="center", va="bottom", fontsize=9)
            axis.set_title(f"{app}: {title}", fontsize=10)
            axis.tick_params(axis="x", labelsize=8)
    figure.suptitle("Tracking SDKs inside a web app: medians over the rounds, bars show the range")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def section(tables: str | None) -> str:
    """The docs section: how the scenario works and how to run it, then the tables (or "to be measured")."""
    if tables is None:
        figures = "To be measured: the figures will be published from a run on a quiet machine."
    else:
        figures = f"![The SDKs inside a web app](benchmarks-webapp.png)\n\n{tables}"
    return f"""{BEGIN}
## In a web app under load

What the SDKs cost a real web app (issue 19), measured by `tests/benchmarks/webapp/bench.py`: a small Flask app
under gunicorn (2 sync workers, `--preload`) and the same app in FastAPI under uvicorn (2 workers; PromptStream's
and PostHog's async clients, Segment has none). Each request builds a ~2 KB JSON answer and tracks 3 events, each
for another user. Variants: no tracking, PromptStream, Segment and PostHog, each SDK with its default settings and
all sending to the same loopback counting sink. Each variant runs in a fresh server in every round; variants are
interleaved, their order rotating.

- **Maximum throughput**: `wrk -t1 -c16 -d20s` (Debian's wrk). **Fixed rate**: 400 requests/s from a paced
  generator in its own process (`paced.py`), latency measured from when each request was meant to be sent, so a
  stall counts against every request it holds up (no coordinated omission).
- **App CPU per request**: CPU of the server's process tree (master and workers, from /proc) from the start of the
  load until the sink had every event tracked in it, per request served.
- **Time in the 3 track calls**: `perf_counter_ns` around them inside the app, one sample per request.
- **Servers**: gunicorn's sync workers close the connection after each answer; uvicorn keeps it alive and runs on
  uvloop and httptools (`uvicorn[standard]`, as deployed; its pure-Python h11 path stalled keep-alive answers about
  40 ms here). **Generator's own lag**: how late the paced generator handed out requests; it bounds what the
  fixed-rate percentiles can resolve.
- **RSS / PSS**: summed over the process tree after the load; PSS counts the pages `--preload` shares only once.
- **Delivery**: tracked = track calls made in the workers (an event an SDK drops silently shows as missing);
  delivered = distinct event ids at the sink after a drain and the server's shutdown; duplicates = events received
  beyond one per id.

Run it (wrk: `apt-get update && apt-get install -y wrk`):

```
tox -e bench-webapp -- --write-docs      # 4 rounds x 2 apps x 4 variants, about 30 minutes, on a quiet machine
tox -e bench-webapp -- --quick           # 1 round, 3 s per phase: checks the harness end to end
```

{figures}
{END}"""


def replace_section(page: str, new_section: str) -> str:
    """The page with its web-app section replaced (or appended if it has none)."""
    if BEGIN in page and END in page:
        head, rest = page.split(BEGIN, 1)
        return head + new_section + rest.split(END, 1)[1]
    return page.rstrip("\n") + "\n\n" + new_section + "\n"


# Hand-written sections that report.py's rewrite of the page keeps as they were (tests/benchmarks/steady.py's
# measurements and the profile of the steady state, issue 19), placed before the web-app section.
KEPT_SECTIONS = [("<!-- steady-state:begin -->", "<!-- steady-state:end -->")]


def carry_over(new_page: str, old_page: str) -> str:
    """For report.py: the freshly written page, with the web-app section the old page had (or the placeholder) and
    the hand-written sections of KEPT_SECTIONS."""
    if BEGIN in old_page and END in old_page:
        kept = BEGIN + old_page.split(BEGIN, 1)[1].split(END, 1)[0] + END
    else:
        kept = section(None)
    for begin, end in KEPT_SECTIONS:
        if begin in old_page and end in old_page and begin not in new_page:
            kept = begin + old_page.split(begin, 1)[1].split(end, 1)[0] + end + "\n\n" + kept
    return replace_section(new_page, kept)


def write_docs(results: dict[str, Any], tables: str) -> None:
    plot(results, PLOT)
    DOCS_PAGE.write_text(replace_section(DOCS_PAGE.read_text(), section(tables)))
    print(f"wrote {DOCS_PAGE.relative_to(REPO)} (its web-app section) and {PLOT.relative_to(REPO)}")
