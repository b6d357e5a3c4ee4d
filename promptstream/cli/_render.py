"""Experiment results as a plain-text table (no colour, so it reads the same in a log or a pipe).

The verdict printed under the table is the server's peeking-safe decision (``results.decision``); the fixed-horizon
p-value column is labelled as such, for teams that read the results once at a pre-registered sample size."""

from __future__ import annotations

from collections.abc import Sequence

from .._results_models import (
    ExperimentResults,
    LiftEstimate,
    MeanResult,
    QuantileResult,
    RateResult,
    RatioResult,
    VariantResult,
)

__all__ = [
    "render_decision",
    "render_results",
    "render_usage",
    "results_notes",
    "results_table",
    "usage_table",
    "winner",
]


def _percent(rate: RateResult) -> str:
    if rate.rate is None:
        return "—"
    return f"{rate.rate:.1%} [{rate.ci_low:.1%}, {rate.ci_high:.1%}]"


def _mean(mean: MeanResult) -> str:
    if mean.mean is None:
        return "—"
    if mean.ci_low is None or mean.ci_high is None:
        return f"{mean.mean:.2f}"
    return f"{mean.mean:.2f} [{mean.ci_low:.2f}, {mean.ci_high:.2f}]"


def _lift(rate: RateResult) -> str:
    if rate.lift is None:
        return "—"
    relative = f" ({rate.relative_lift:+.0%})" if rate.relative_lift is not None else ""
    return f"{rate.lift * 100:+.1f} pts{relative}"


def _p(p_value: float | None) -> str:
    if p_value is None:
        return "—"
    return "<0.001" if p_value < 0.001 else f"{p_value:.3f}"


def _interval(estimate: LiftEstimate | None) -> str:
    if estimate is None or estimate.ci_low is None or estimate.ci_high is None:
        return "—"
    return f"[{estimate.ci_low * 100:+.1f}, {estimate.ci_high * 100:+.1f}] pts"


def _quantile(figure: QuantileResult) -> str:
    if figure.value is None:
        return "—"
    low = f"{figure.ci_low:,.0f}" if figure.ci_low is not None else "?"
    high = f"{figure.ci_high:,.0f}" if figure.ci_high is not None else "?"
    return f"{figure.value:,.0f} [{low}, {high}]"


def _shift(estimate: LiftEstimate | None, unit: str, digits: int = 0) -> str:
    """A lift with its always-valid interval, in the figure's own unit."""
    if estimate is None:
        return "—"
    if estimate.ci_low is None or estimate.ci_high is None:
        return f"{estimate.lift:+,.{digits}f}{unit}"
    return f"{estimate.lift:+,.{digits}f}{unit} [{estimate.ci_low:+,.{digits}f}, {estimate.ci_high:+,.{digits}f}]"


def _amount(value: float | None, digits: int, prefix: str = "") -> str:
    return "—" if value is None else f"{prefix}{value:,.{digits}f}"


def _ratio(figure: RatioResult, digits: int, prefix: str = "") -> str:
    return _amount(figure.value, digits, prefix)


def render_usage(results: ExperimentResults) -> str | None:
    """Latency, tokens and cost per variant (None from a server that predates run metrics)."""
    rows = usage_table(results)
    return None if rows is None else _table(rows)


def usage_table(results: ExperimentResults) -> list[Sequence[str]] | None:
    """The cells of the latency, tokens and cost table, header first (None from a server before run metrics)."""
    if all(v.latency_ms is None for v in results.variants):
        return None
    header = (
        "variant",
        "latency p50 ms [95% CI]",
        "p95 ms [95% CI]",
        "p50 lift (always-valid)",
        "tokens / run",
        "tokens / conversion",
        "cost / run",
        "cost / conversion",
        "cost / conv. lift (always-valid)",
    )
    rows: list[Sequence[str]] = [header]
    for v in results.variants:
        latency, tokens, cost = v.latency_ms, v.tokens, v.cost_usd
        rows.append(
            (
                v.variant + (" (control)" if v.variant == results.control else ""),
                _quantile(latency.median) if latency else "—",
                _quantile(latency.p95) if latency else "—",
                _shift(latency.median.always_valid, " ms") if latency else "—",
                _amount(tokens.per_run.mean, 1) if tokens else "—",
                _ratio(tokens.per_conversion, 1) if tokens else "—",
                _amount(cost.per_run.mean, 6, "$") if cost else "—",
                _ratio(cost.per_conversion, 4, "$") if cost else "—",
                _shift(cost.per_conversion.always_valid, "", 4) if cost else "—",
            )
        )
    return rows


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def winner(results: ExperimentResults) -> VariantResult | None:
    """The variant the server's peeking-safe decision says to ship, if any (never a bare p < 0.05)."""
    if results.decision is None or results.decision.winner is None:
        return None
    return results.variant(results.decision.winner)


def render_decision(results: ExperimentResults) -> str:
    """One line: the decision and its reason, or a note that the server predates decisions."""
    if results.decision is None:
        return "Decision: none (the server predates peeking-safe decisions; read the fixed-horizon p-values only once)"
    return f"Decision: {results.decision.action.replace('_', ' ')} — {results.decision.reason}"


def results_table(results: ExperimentResults) -> list[Sequence[str]]:
    """The table's cells, header first: what the CLI prints and a notebook shows (``ExperimentResults._repr_html_``)."""
    header = (
        "variant",
        "runs",
        "users",
        "click-through / run",
        "conversion / user",
        "thumbs-up",
        "mean rating",
        "conv. lift",
        "always-valid 95% CI",
        "always-valid p",
        "fixed-horizon p",
    )
    rows: list[Sequence[str]] = [header]
    for v in results.variants:
        conversion = v.conversion.per_user
        rows.append(
            (
                v.variant + (" (control)" if v.variant == results.control else ""),
                f"{v.runs:,}",
                f"{v.users:,}",
                _percent(v.click_through.per_run),
                _percent(conversion),
                _percent(v.thumbs_up),
                _mean(v.rating),
                _lift(conversion),
                _interval(conversion.always_valid),
                _p(conversion.always_valid.adjusted_p_value if conversion.always_valid else None),
                _p(conversion.p_value),
            )
        )
    return rows


def results_notes(results: ExperimentResults) -> list[str]:
    """The lines under the table: the decision, how to read the p-values, and the warnings."""
    lines = [render_decision(results)]
    if results.decision is not None:
        lines.append(
            f"(primary metric {results.decision.primary_metric}, guardrails"
            f" {', '.join(results.decision.guardrail_metrics) or 'none'}; {results.decision.method}; always-valid p"
            " is Holm-adjusted and stays valid however often you look; the fixed-horizon p is valid only at a sample"
            " size fixed in advance)"
        )
    lines.extend(f"warning: {w}" for w in results.warnings)
    return lines


def render_results(results: ExperimentResults) -> str:
    rows = results_table(results)
    header = rows[0]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    usage = render_usage(results)
    if usage is not None:
        lines += ["", usage]
    lines.append("")
    lines.extend(results_notes(results))
    return "\n".join(lines)
