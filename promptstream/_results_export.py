"""Experiment results as data: rows for dataframes, the HTML a notebook shows, and a short ``repr``.

``ExperimentResults.to_dict()`` / ``.rows()`` / ``.to_pandas()`` / ``.to_polars()`` and its ``_repr_html_`` and
``__repr__`` call into this module, so the wire model stays a plain msgspec Struct. pandas and polars are imported
only when a frame is asked for (extras ``pandas`` and ``polars``); a missing one is a ``MissingDependencyError``
naming the extra. The notebook table is the CLI's table (``promptstream.cli._render``), escaped, not a second
formatting of the same figures.

One row per variant and metric. A metric is every rate or mean the server reports for a variant: a rate counted per
run and per user (``click_through``, ``conversion``) gives two metrics, ``conversion_per_user`` and so on, named as
the server's decision names them (docs/experiments.md). Fields a newer server adds to a variant with the same shape
(an interval, a lift, p-values) become rows too.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from ._errors import MissingDependencyError

if TYPE_CHECKING:
    from ._results_models import ExperimentResults, VariantResult

__all__ = [
    "COLUMNS",
    "TIMESERIES_KEY_COLUMNS",
    "columns_of",
    "require",
    "result_rows",
    "results_csv",
    "results_html",
    "results_repr",
    "results_to_dict",
    "results_to_pandas",
    "results_to_polars",
    "timeseries_rows",
    "timeseries_to_dict",
    "timeseries_to_pandas",
    "timeseries_to_polars",
]

# (column, kind): the columns of every row, in order. "fixed_horizon_*" figures are valid only when read once at a
# sample size fixed in advance; "always_valid_*" figures stay valid however often they are read.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("experiment_id", "str"),
    ("variant", "str"),
    ("is_control", "bool"),
    ("metric", "str"),
    ("kind", "str"),  # "rate" (successes / n), "mean", or "value" (a quantile or a ratio: latency, cost)
    ("runs", "int"),
    ("users", "int"),
    ("n", "int"),  # trials of a rate, observations of a mean
    ("successes", "int"),  # rates only
    ("estimate", "float"),  # the rate or the mean
    ("ci_low", "float"),  # its own 95% interval (Wilson for rates, t for means)
    ("ci_high", "float"),
    ("lift", "float"),  # absolute, against the control; None for the control
    ("relative_lift", "float"),
    ("fixed_horizon_ci_low", "float"),  # 95% interval on the lift
    ("fixed_horizon_ci_high", "float"),
    ("fixed_horizon_p_value", "float"),
    ("always_valid_ci_low", "float"),
    ("always_valid_ci_high", "float"),
    ("always_valid_p_value", "float"),
    ("always_valid_adjusted_p_value", "float"),  # Holm-adjusted within its family: what the decision reads
    ("guardrail_violation", "bool"),
)
_ESTIMATE_FIELDS = ("rate", "mean", "median", "value", "estimate")
# where the server's decision names a metric differently from its place in a variant (docs/experiments.md)
_METRIC_NAMES = {"latency_ms_median": "latency_median", "latency_ms_p95": "latency_p95"}
TIMESERIES_KEY_COLUMNS = ("date", "variant")

_EXTRAS = {"pandas": "pandas", "polars": "polars"}


def require(module: str) -> Any:
    """``import module``, or a ``MissingDependencyError`` naming the extra that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = _EXTRAS.get(module, module)
        raise MissingDependencyError(
            f"{module} is not installed: pip install 'promptstream[{extra}]' ({exc})", extra=extra
        ) from None


# -- rows ----------------------------------------------------------------------------------------------------------


def _metrics(variant: VariantResult) -> Iterator[tuple[str, Any]]:
    """(metric name, figure) of every rate or mean of a variant, in the order the server sends them."""
    for name, value in msgspec.structs.asdict(variant).items():
        if not isinstance(value, msgspec.Struct):
            continue
        if _is_figure(value):
            yield name, value
        else:  # a group such as OutcomeRates: per_run, per_user
            for part, inner in msgspec.structs.asdict(value).items():
                if isinstance(inner, msgspec.Struct) and _is_figure(inner):
                    metric = f"{name}_{part}"
                    yield _METRIC_NAMES.get(metric, metric), inner


def _is_figure(value: msgspec.Struct) -> bool:
    return hasattr(value, "ci_low") and any(hasattr(value, field) for field in _ESTIMATE_FIELDS)


def _number(value: object) -> float | None:
    """A float for a frame; a non-finite or missing figure is None (null), never an error."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _estimate_row(figure: Any) -> dict[str, Any]:
    estimate = next((getattr(figure, f) for f in _ESTIMATE_FIELDS if hasattr(figure, f)), None)
    is_rate = hasattr(figure, "successes")
    kind = "rate" if is_rate else "mean" if hasattr(figure, "mean") else "value"
    fixed = getattr(figure, "fixed_horizon", None)
    always = getattr(figure, "always_valid", None)
    fixed_p = getattr(figure, "p_value", None)
    if fixed_p is None and fixed is not None:
        fixed_p = fixed.p_value
    return {
        "kind": kind,
        "n": getattr(figure, "trials", None) if is_rate else getattr(figure, "n", None),
        "successes": getattr(figure, "successes", None),
        "estimate": _number(estimate),
        "ci_low": _number(getattr(figure, "ci_low", None)),
        "ci_high": _number(getattr(figure, "ci_high", None)),
        "lift": _number(getattr(figure, "lift", None)),
        "relative_lift": _number(getattr(figure, "relative_lift", None)),
        "fixed_horizon_ci_low": _number(fixed.ci_low) if fixed is not None else None,
        "fixed_horizon_ci_high": _number(fixed.ci_high) if fixed is not None else None,
        "fixed_horizon_p_value": _number(fixed_p),
        "always_valid_ci_low": _number(always.ci_low) if always is not None else None,
        "always_valid_ci_high": _number(always.ci_high) if always is not None else None,
        "always_valid_p_value": _number(always.p_value) if always is not None else None,
        "always_valid_adjusted_p_value": _number(always.adjusted_p_value) if always is not None else None,
    }


def result_rows(results: ExperimentResults) -> list[dict[str, Any]]:
    """One dict per variant and metric, every dict with every column of ``COLUMNS`` (None where a figure is
    undefined).

    Example:
        ```python
        rows = result_rows(results)
        best = max((r for r in rows if r["metric"] == "conversion_per_user"), key=lambda r: r["estimate"] or 0)
        ```
    """
    rows: list[dict[str, Any]] = []
    for variant in results.variants:
        violations = set(variant.guardrail_violations)
        for metric, figure in _metrics(variant):
            row = {
                "experiment_id": results.experiment_id,
                "variant": variant.variant,
                "is_control": variant.variant == results.control,
                "metric": metric,
                "runs": variant.runs,
                "users": variant.users,
                **_estimate_row(figure),
                "guardrail_violation": metric in violations,
            }
            rows.append({name: row[name] for name, _ in COLUMNS})
    return rows


def columns_of(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> dict[str, list[Any]]:
    """Rows as columns: ``{column: [value of each row]}`` (a missing value is None)."""
    return {name: [row.get(name) for row in rows] for name in columns}


def results_to_dict(results: ExperimentResults) -> dict[str, list[Any]]:
    """The rows as columns, ``{column: [one value per variant and metric]}``: plain Python values, ready for
    ``json.dumps``, ``pandas.DataFrame(...)`` or ``polars.DataFrame(...)``."""
    return columns_of(result_rows(results), [name for name, _ in COLUMNS])


# -- frames ----------------------------------------------------------------------------------------------------------

_PANDAS_DTYPES = {"str": "object", "int": "Int64", "float": "float64", "bool": "bool"}


def _pandas_frame(columns: Mapping[str, list[Any]], kinds: Mapping[str, str]) -> Any:
    pandas = require("pandas")
    # nullable Int64 keeps counts whole where some rows have none (pandas 1.5 has it too); floats use NaN
    return pandas.DataFrame(
        {
            name: pandas.Series(values, dtype=_PANDAS_DTYPES[kinds.get(name, "str")], name=name)
            for name, values in columns.items()
        }
    )


def _polars_frame(columns: Mapping[str, list[Any]], kinds: Mapping[str, str]) -> Any:
    polars = require("polars")
    dtypes = {"str": polars.Utf8, "int": polars.Int64, "float": polars.Float64, "bool": polars.Boolean}
    return polars.DataFrame(
        {
            name: polars.Series(name, [_for_kind(v, kinds.get(name, "str")) for v in values], dtype=dtypes[kind])
            for name, values in columns.items()
            for kind in (kinds.get(name, "str"),)
        }
    )


def _for_kind(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "float":
        return float(value)
    if kind == "str":
        return str(value)
    return value


_KINDS = dict(COLUMNS)


def results_to_pandas(results: ExperimentResults) -> Any:
    """A ``pandas.DataFrame`` of ``result_rows``; needs the ``pandas`` extra."""
    require("pandas")  # before any work: the missing extra is the error, not whatever comes first
    return _pandas_frame(results_to_dict(results), _KINDS)


def results_to_polars(results: ExperimentResults) -> Any:
    """A ``polars.DataFrame`` of ``result_rows``; needs the ``polars`` extra."""
    require("polars")
    return _polars_frame(results_to_dict(results), _KINDS)


# -- the time series ------------------------------------------------------------------------------------------------


def _flatten(prefix: str, value: Any, into: dict[str, Any]) -> None:
    if isinstance(value, msgspec.Struct):
        value = msgspec.structs.asdict(value)
    if isinstance(value, Mapping):
        for key, inner in value.items():
            _flatten(f"{prefix}_{key}" if prefix else str(key), inner, into)
    else:
        into[prefix] = value


def timeseries_rows(points: Sequence[Any]) -> list[dict[str, Any]]:
    """One flat dict per day and variant from the time series' points (dicts or Structs): nested figures become
    ``name_field`` columns (``{"conversion": {"rate": .1, "ci_low": .05}}`` gives ``conversion_rate`` and
    ``conversion_ci_low``), sorted by date then variant.

    Example:
        ```python
        rows = timeseries_rows([{"date": "2026-12-01", "variant": "v1", "runs": 10}])
        assert rows == [{"date": "2026-12-01", "variant": "v1", "runs": 10}]
        ```
    """
    rows: list[dict[str, Any]] = []
    for point in points:
        row: dict[str, Any] = {}
        _flatten("", point, row)
        rows.append(row)
    rows.sort(key=lambda r: tuple(str(r.get(k, "")) for k in TIMESERIES_KEY_COLUMNS))
    return rows


def _kind(values: Sequence[Any]) -> str:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return "bool"
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "int"
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return "float"
    return "str"


def _declared_kinds(points: Sequence[Any]) -> dict[str, str]:
    """Column kinds from a Struct's annotations (``TimeseriesRow``), so a column that is None on every row still
    has its type: a day without a control has no lifts, and its frame must still have float columns."""
    if not points or not isinstance(points[0], msgspec.Struct):
        return {}
    kinds = {msgspec.inspect.IntType: "int", msgspec.inspect.FloatType: "float", msgspec.inspect.BoolType: "bool"}
    declared: dict[str, str] = {}
    info = msgspec.inspect.type_info(type(points[0]))
    for field_info in getattr(info, "fields", ()):
        options = getattr(field_info.type, "types", (field_info.type,))
        found = {
            kinds.get(type(option), "str") for option in options if not isinstance(option, msgspec.inspect.NoneType)
        }
        declared[field_info.name] = found.pop() if len(found) == 1 else "str"
    return declared


def _timeseries_kinds(points: Sequence[Any], rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], dict[str, str]]:
    # an experiment with no day yet still has the columns (a frame of no rows, not of no columns)
    names = list(dict.fromkeys(name for row in rows for name in row))
    if not names:
        from ._results_models import TimeseriesRow

        names = [field.name for field in msgspec.structs.fields(TimeseriesRow)]
    declared = _declared_kinds(points)
    return names, {name: declared.get(name) or _kind([row.get(name) for row in rows]) for name in names}


def timeseries_to_dict(points: Sequence[Any]) -> dict[str, list[Any]]:
    """The time series (``client.experiments.timeseries(id)``) as columns, ``{column: [one value per day and
    variant]}``, sorted by day then variant.

    Example:
        ```python
        table = timeseries_to_dict(client.experiments.timeseries(experiment_id))
        print(list(zip(table["date"], table["variant"], table["conversion_rate"])))
        ```
    """
    rows = timeseries_rows(points)
    names, _ = _timeseries_kinds(points, rows)
    return columns_of(rows, names)


def timeseries_to_pandas(points: Sequence[Any]) -> Any:
    """The time series (``client.experiments.timeseries(id)``) as a ``pandas.DataFrame``, one row per day and
    variant; needs the ``pandas`` extra.

    Example:
        ```python
        frame = timeseries_to_pandas(client.experiments.timeseries(experiment_id))
        ```
    """
    require("pandas")
    rows = timeseries_rows(points)
    names, kinds = _timeseries_kinds(points, rows)
    return _pandas_frame(columns_of(rows, names), kinds)


def timeseries_to_polars(points: Sequence[Any]) -> Any:
    """The time series as a ``polars.DataFrame``, one row per day and variant; needs the ``polars`` extra.

    Example:
        ```python
        frame = timeseries_to_polars(client.experiments.timeseries(experiment_id))
        ```
    """
    require("polars")
    rows = timeseries_rows(points)
    names, kinds = _timeseries_kinds(points, rows)
    return _polars_frame(columns_of(rows, names), kinds)


# -- notebooks and the REPL ---------------------------------------------------------------------------------------


def results_html(results: ExperimentResults) -> str:
    """The CLI's results table (``promptstream experiments results``) as an HTML table, with its notes."""
    from .cli._render import results_notes, results_table, usage_table

    parts = [
        f'<div class="promptstream-results"><p><strong>Experiment {html.escape(results.experiment_id)}</strong>'
        f" (prompt {html.escape(results.prompt_id)})</p>",
    ]
    for table in (results_table(results), usage_table(results)):
        if table is None:
            continue
        header, *body = table
        cells = "".join(f"<th>{html.escape(cell)}</th>" for cell in header)
        parts.append(f"<table><thead><tr>{cells}</tr></thead><tbody>")
        for row in body:
            parts.append("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>")
        parts.append("</tbody></table>")
    parts.extend(f"<p>{html.escape(note)}</p>" for note in results_notes(results))
    parts.append("</div>")
    return "".join(parts)


def results_repr(results: ExperimentResults) -> str:
    """One line: the experiment, its variants with their runs, and the decision."""
    variants = ", ".join(
        f"{v.variant}{'*' if v.variant == results.control else ''}: {v.runs} runs" for v in results.variants
    )
    action = results.decision.action if results.decision is not None else None
    return f"ExperimentResults(experiment_id={results.experiment_id!r}, variants=[{variants}], decision={action!r})"


def results_csv(results: ExperimentResults) -> str:
    """``result_rows`` as CSV with a header line (``promptstream experiments results ID --format csv``): empty cells
    where a figure is undefined, floats at full precision (``repr``), so the file reads back to the same numbers."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([name for name, _ in COLUMNS])
    for row in result_rows(results):
        writer.writerow(["" if row[name] is None else _csv_cell(row[name]) for name, _ in COLUMNS])
    return out.getvalue()


def _csv_cell(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)
