"""Charts as inline SVG, drawn by the server: pure functions from figures to markup, so a page needs no script and
no chart library, works offline, and a test can draw a chart from made-up figures.

Every chart is an ``<svg role="img">`` with a ``<title>`` and a ``<desc>`` that says in words what it shows, and
the page puts the same figures in a table next to it (a screen reader reads the table).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

from markupsafe import Markup

# Okabe-Ito: distinguishable with the common colour-vision deficiencies, each dark enough on white (WCAG 3:1)
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#8A6D00", "#56B4E9", "#E69F00", "#000000")
WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 40


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


@dataclass(frozen=True)
class Interval:
    """A rate and its interval for one variant (``rate`` None: no data yet)."""

    label: str
    rate: float | None
    low: float | None
    high: float | None


@dataclass
class Series:
    """One variant's points over time: (x, y, low, high) with x increasing."""

    label: str
    points: list[tuple[float, float, float | None, float | None]] = field(default_factory=list)


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def text(value: str) -> str:
    """``value`` escaped for SVG text, without the characters XML cannot hold (a label is user data)."""
    return escape(_NOT_XML.sub("\ufffd", value))


def _svg(title: str, description: str, body: str, height: int = HEIGHT) -> Markup:
    # every text that comes from data (labels, titles) is escaped where it is placed; the rest is our own markup
    return Markup(  # noqa: S704
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {height}" width="100%" '
        f'preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{text(title)}</title><desc>{text(description)}</desc>{body}</svg>"
    )


def _nice_max(value: float) -> float:
    if not value > 1e-9:  # nothing (or nothing visible) to scale to: a unit axis
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def _percent(value: float) -> str:
    return f"{value * 100:.1f}%".replace(".0%", "%")


def _axes(y_max: float, as_percent: bool, plot_height: int) -> str:
    parts = []
    for i in range(5):
        value = y_max * i / 4
        y = TOP + plot_height - plot_height * i / 4
        label = _percent(value) if as_percent else f"{value:,.0f}" if y_max >= 4 else f"{value:g}"
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{text(label)}</text>')
    return "".join(parts)


def _legend(labels: Sequence[str], y: float) -> str:
    parts, x = [], LEFT
    for index, label in enumerate(labels):
        parts.append(f'<rect x="{x}" y="{y - 9}" width="12" height="12" fill="{colour(index)}"/>')
        parts.append(f'<text class="legend" x="{x + 16}" y="{y + 1}">{text(label)}</text>')
        x += 28 + 8 * len(label)
    return "".join(parts)


def interval_chart(title: str, intervals: Sequence[Interval]) -> Markup:
    """Each variant's rate as a dot with its interval as a bar, on one 0..max scale.

    Example:
        ```python
        svg = interval_chart("Conversion", [Interval("v1", 0.1, 0.08, 0.12), Interval("v2", None, None, None)])
        assert "<svg" in svg
        ```
    """
    rows = max(1, len(intervals))
    row_height = 28
    height = TOP + rows * row_height + BOTTOM
    plot_width = WIDTH - LEFT - RIGHT
    top = max([i.high or i.rate or 0.0 for i in intervals] + [0.0])
    x_max = _nice_max(top)
    parts = []
    for step in range(5):
        x = LEFT + plot_width * step / 4
        parts.append(f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{height - BOTTOM}"/>')
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{height - BOTTOM + 16}" text-anchor="middle">'
            f"{text(_percent(x_max * step / 4))}</text>"
        )
    described = []
    for index, item in enumerate(intervals):
        y = TOP + index * row_height + row_height / 2
        parts.append(f'<text class="label" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{text(item.label)}</text>')
        if item.rate is None:
            parts.append(f'<text class="tick" x="{LEFT + 6}" y="{y + 4:.1f}">no data yet</text>')
            described.append(f"{item.label}: no data yet")
            continue
        low = item.low if item.low is not None else item.rate
        high = item.high if item.high is not None else item.rate

        def at(value: float) -> float:
            return LEFT + plot_width * min(max(value, 0.0), x_max) / x_max

        parts.append(
            f'<line class="interval" x1="{at(low):.1f}" x2="{at(high):.1f}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{colour(index)}" stroke-width="6" stroke-linecap="round" opacity="0.45"/>'
        )
        parts.append(f'<circle cx="{at(item.rate):.1f}" cy="{y:.1f}" r="5" fill="{colour(index)}"/>')
        described.append(f"{item.label}: {_percent(item.rate)} (interval {_percent(low)} to {_percent(high)})")
    return _svg(title, "; ".join(described) or "no variants", "".join(parts), height)


def line_chart(title: str, series: Sequence[Series], *, x_label: str, as_percent: bool = True) -> Markup:
    """One line per series, with its interval as a shaded band where the points have one.

    Example:
        ```python
        svg = line_chart("Conversion as users arrive", [Series("v1", [(10, 0.1, 0.0, 0.3), (20, 0.12, 0.02, 0.25)])],
                         x_label="users")
        assert "polyline" in svg
        ```
    """
    plot_height = HEIGHT - TOP - BOTTOM - 18
    plot_width = WIDTH - LEFT - RIGHT
    xs = [p[0] for s in series for p in s.points]
    ys = [v for s in series for p in s.points for v in (p[1], p[3]) if v is not None]
    if not xs:
        body = f'<text class="tick" x="{LEFT}" y="{TOP + 20}">no data yet</text>'
        return _svg(title, "no data yet", body)
    x_min, x_max = min(xs), max(xs)
    x_span = (x_max - x_min) or 1.0
    y_max = _nice_max(max([*ys, 0.0]))
    if as_percent:
        y_max = min(y_max, 1.0) if max([*ys, 0.0]) <= 1.0 else y_max

    def px(x: float) -> float:
        return LEFT + plot_width * (x - x_min) / x_span

    def py(y: float) -> float:
        return TOP + plot_height - plot_height * min(max(y, 0.0), y_max) / y_max

    parts = [_axes(y_max, as_percent, plot_height)]
    described = []
    for index, item in enumerate(series):
        if not item.points:  # no figure yet (no users): in the legend, not on the plot
            continue
        banded = [p for p in item.points if p[2] is not None and p[3] is not None]
        if len(banded) > 1:
            upper = " ".join(f"{px(p[0]):.1f},{py(p[3] or 0.0):.1f}" for p in banded)
            lower = " ".join(f"{px(p[0]):.1f},{py(p[2] or 0.0):.1f}" for p in reversed(banded))
            parts.append(f'<polygon class="band" points="{upper} {lower}" fill="{colour(index)}" opacity="0.15"/>')
        line = " ".join(f"{px(p[0]):.1f},{py(p[1]):.1f}" for p in item.points)
        parts.append(f'<polyline points="{line}" fill="none" stroke="{colour(index)}" stroke-width="2"/>')
        for p in item.points:
            parts.append(f'<circle cx="{px(p[0]):.1f}" cy="{py(p[1]):.1f}" r="2.5" fill="{colour(index)}"/>')
        if item.points:
            last = item.points[-1]
            shown = _percent(last[1]) if as_percent else f"{last[1]:,.0f}"
            described.append(f"{item.label}: {shown} at {x_label} {last[0]:,.0f}")
    parts.append(
        f'<text class="tick" x="{LEFT}" y="{TOP + plot_height + 16}">{text(f"{x_min:,.0f}")}</text>'
        f'<text class="tick" x="{WIDTH - RIGHT}" y="{TOP + plot_height + 16}" text-anchor="end">'
        f"{text(f'{x_max:,.0f} {x_label}')}</text>"
    )
    parts.append(_legend([s.label for s in series], HEIGHT - 8))
    return _svg(title, "; ".join(described), "".join(parts))


def bar_chart(title: str, categories: Sequence[str], groups: Sequence[tuple[str, Sequence[float]]]) -> Markup:
    """Grouped bars: for each category (a day), one bar per group (a variant).

    Example:
        ```python
        svg = bar_chart("Runs per day", ["2026-12-01", "2026-12-02"], [("v1", [10, 12]), ("v2", [9, 14])])
        assert svg.count("<rect") >= 4
        ```
    """
    plot_height = HEIGHT - TOP - BOTTOM - 18
    plot_width = WIDTH - LEFT - RIGHT
    if not categories or not groups:
        return _svg(title, "no data yet", f'<text class="tick" x="{LEFT}" y="{TOP + 20}">no data yet</text>')
    y_max = _nice_max(max([v for _, values in groups for v in values] + [0.0]))
    slot = plot_width / len(categories)
    bar = max(2.0, (slot * 0.8) / len(groups))
    parts = [_axes(y_max, False, plot_height)]
    described = []
    for c_index, category in enumerate(categories):
        x0 = LEFT + slot * c_index + slot * 0.1
        for g_index, (label, values) in enumerate(groups):
            value = values[c_index] if c_index < len(values) else 0.0
            h = plot_height * value / y_max
            parts.append(
                f'<rect x="{x0 + g_index * bar:.1f}" y="{TOP + plot_height - h:.1f}" width="{bar - 1:.1f}" '
                f'height="{h:.1f}" fill="{colour(g_index)}"/>'
            )
            described.append(f"{category} {label}: {value:,.0f}")
        if len(categories) <= 12 or c_index % math.ceil(len(categories) / 12) == 0:
            parts.append(
                f'<text class="tick" x="{x0 + slot * 0.4:.1f}" y="{TOP + plot_height + 16}" '
                f'text-anchor="middle">{text(category[5:] if len(category) == 10 else category)}</text>'
            )
    parts.append(_legend([label for label, _ in groups], HEIGHT - 8))
    return _svg(title, "; ".join(described), "".join(parts))


def ratio_chart(title: str, observed: Sequence[tuple[str, float, float]]) -> Markup:
    """The sample-ratio check: each variant's observed share of users (bar) against its expected share (mark).

    Example:
        ```python
        svg = ratio_chart("Sample ratio", [("v1", 0.52, 0.5), ("v2", 0.48, 0.5)])
        ```
    """
    intervals = [Interval(f"{label}", share, share, share) for label, share, _ in observed]
    rows = max(1, len(intervals))
    row_height = 28
    height = TOP + rows * row_height + BOTTOM
    plot_width = WIDTH - LEFT - RIGHT
    parts, described = [], []
    for step in range(5):
        x = LEFT + plot_width * step / 4
        parts.append(f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{height - BOTTOM}"/>')
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{height - BOTTOM + 16}" text-anchor="middle">{step * 25}%</text>'
        )
    for index, (label, share, expected) in enumerate(observed):
        y = TOP + index * row_height + 6
        parts.append(f'<text class="label" x="{LEFT - 6}" y="{y + 12:.1f}" text-anchor="end">{text(label)}</text>')
        parts.append(
            f'<rect x="{LEFT}" y="{y:.1f}" width="{plot_width * share:.1f}" height="16" fill="{colour(index)}"/>'
        )
        x = LEFT + plot_width * expected
        parts.append(f'<line class="expected" x1="{x:.1f}" x2="{x:.1f}" y1="{y - 3:.1f}" y2="{y + 19:.1f}"/>')
        described.append(f"{label}: {_percent(share)} of users, expected {_percent(expected)}")
    return _svg(title, "; ".join(described) or "no variants", "".join(parts), height)


# -- figures the charts are drawn from ---------------------------------------------------------------------------


def conversion_intervals(results: dict[str, Any]) -> list[Interval]:
    """Per-user conversion rate and interval of each variant, from ``GET /v1/experiments/{id}/results``."""
    out = []
    for variant in results.get("variants", []):
        figures = variant.get("conversion", {}).get("per_user", {})
        out.append(Interval(variant["variant"], figures.get("rate"), figures.get("ci_low"), figures.get("ci_high")))
    return out


def observed_shares(results: dict[str, Any]) -> list[tuple[str, float, float]]:
    """(variant, share of users, expected share from the weights), from the results."""
    variants = results.get("variants", [])
    users = sum(int(v.get("users") or 0) for v in variants)
    weights = sum(float(v.get("weight") or 0.0) for v in variants) or 1.0
    return [
        (v["variant"], (int(v.get("users") or 0) / users) if users else 0.0, float(v.get("weight") or 0.0) / weights)
        for v in variants
    ]


def timeseries_charts(timeseries: dict[str, Any]) -> tuple[list[Series], list[str], list[tuple[str, list[float]]]]:
    """From ``experiment_timeseries``'s rows (date, variant, runs, users, conversions, the cumulative conversion
    rate and its interval): the conversion series against cumulative users, and the runs per day per variant."""
    rows = sorted(timeseries.get("days", []), key=lambda r: (str(r.get("date")), str(r.get("variant"))))
    dates = sorted({str(r.get("date")) for r in rows})
    variants = sorted({str(r.get("variant")) for r in rows})
    series = {v: Series(v) for v in variants}
    runs: dict[str, list[float]] = {v: [0.0] * len(dates) for v in variants}
    users_so_far: dict[str, float] = dict.fromkeys(variants, 0.0)
    for row in rows:
        variant, date = str(row.get("variant")), str(row.get("date"))
        runs[variant][dates.index(date)] = float(row.get("runs") or 0)
        cumulative = row.get("cumulative_users")
        users_so_far[variant] = (
            float(cumulative) if cumulative is not None else users_so_far[variant] + float(row.get("users") or 0)
        )
        rate = row.get("conversion_rate", row.get("cumulative_conversion_rate"))
        if rate is None:
            continue
        low = row.get("ci_low", row.get("conversion_ci_low"))
        high = row.get("ci_high", row.get("conversion_ci_high"))
        series[variant].points.append((users_so_far[variant], float(rate), low, high))
    return list(series.values()), dates, [(v, runs[v]) for v in variants]
