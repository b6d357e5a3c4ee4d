"""Experiment results as a plain-text table (no colour, so it reads the same in a log or a pipe)."""

from __future__ import annotations

from collections.abc import Sequence

from .._models import ExperimentResults, MeanResult, RateResult, VariantResult

__all__ = ["SIGNIFICANCE", "render_results", "winner"]

SIGNIFICANCE = 0.05  # two-sided; the demo and the CLI call a variant the winner below this p-value


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


def _p_clause(p_value: float | None) -> str:
    return "p < 0.001" if p_value is not None and p_value < 0.001 else f"p = {_p(p_value)}"


def winner(results: ExperimentResults) -> VariantResult | None:
    """The variant whose conversion per user beats the control's at p < SIGNIFICANCE (the best if several)."""
    candidates = [
        v
        for v in results.variants
        if v.conversion.per_user.p_value is not None
        and v.conversion.per_user.p_value < SIGNIFICANCE
        and (v.conversion.per_user.lift or 0.0) > 0
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda v: v.conversion.per_user.rate or 0.0)


def render_results(results: ExperimentResults) -> str:
    header = (
        "variant",
        "runs",
        "users",
        "click-through / run",
        "conversion / user",
        "thumbs-up",
        "mean rating",
        "conv. lift",
        "p-value",
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
                _p(conversion.p_value),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    best = winner(results)
    if best is not None:
        lines.append(
            f"\nWinner: {best.variant}, conversion per user {_lift(best.conversion.per_user)} over"
            f" {results.control} ({_p_clause(best.conversion.per_user.p_value)})."
        )
    else:
        lines.append(f"\nNo significant winner yet (conversion per user, two-sided p < {SIGNIFICANCE}).")
    lines.extend(f"warning: {w}" for w in results.warnings)
    return "\n".join(lines)
