"""The SQL behind an experiment's results and time series, written once for SQLite and PostgreSQL: the database
groups runs and events per run, per user and per variant, and answers a handful of rows per variant (counts, means
and sums of squared deviations, a few order statistics of latency), never the rows themselves. The rules (latest
feedback and rating per run, engagement summed per run, the wire limit on stored numbers) are those of
docs/experiments.md; ``aggregate_rows`` in _aggregates.py is the same computation in Python, for simulations.

The dialects differ in three spellings only (``Dialect``): the parameter mark, the collation that orders text by
code point, and the UTC date of an epoch. The plans are in docs/experiments.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ._aggregates import USAGE_METRICS, Aggregates, VariantAggregate, latency_estimates
from ._quantiles import QuantilePlan
from ._stats import RatioSummary, Summary

__all__ = ["POSTGRESQL", "SQLITE", "Dialect", "pg_fetch", "read_aggregates", "read_timeseries"]

LIMIT = "1e9"  # the wire limit on stored numbers (VALUE_LIMIT): beyond it, or not a number, a value is left out
Fetch = Callable[[str, Sequence[Any]], list[Any]]


@dataclass(frozen=True)
class Dialect:
    mark: str  # the parameter placeholder
    by_code_point: str  # a collation clause under which text sorts by code point (Python's string order)
    run_day: str  # the UTC date (YYYY-MM-DD) of runs.created_at

    def sql(self, text: str) -> str:
        return text.replace("?", self.mark).replace("{by_code_point}", self.by_code_point)


SQLITE = Dialect("?", "", "date(r.created_at, 'unixepoch')")
POSTGRESQL = Dialect("%s", ' COLLATE "C"', "to_char(to_timestamp(r.created_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD')")


def _valid(column: str, low: str = f"-{LIMIT}") -> str:
    return f"CASE WHEN {column} BETWEEN {low} AND {LIMIT} THEN CAST({column} AS DOUBLE PRECISION) END"


_USAGE_COLUMNS = {
    "input_tokens": _valid("r.input_tokens", "0"),
    "output_tokens": _valid("r.output_tokens", "0"),
    "tokens": f"{_valid('r.input_tokens', '0')} + {_valid('r.output_tokens', '0')}",
    "cost_usd": _valid("r.cost_usd", "0"),
}

# Per run: whether it was clicked and converted and its total engagement (one grouped pass over the experiment's
# events), and its latest valid feedback and rating (a window over those events alone, then one row per run).
_PER_RUN = f"""
WITH run_events AS (
    SELECT prompt_run_id AS run_id,
        MAX(CASE WHEN type = 'click' THEN 1 ELSE 0 END) AS clicked,
        MAX(CASE WHEN type = 'conversion' THEN 1 ELSE 0 END) AS converted,
        SUM(CASE WHEN type = 'engagement' THEN {_valid("engagement_score")} END) AS engagement
    FROM events WHERE project_id = ? AND experiment_id = ? GROUP BY prompt_run_id),
ranked AS (
    SELECT prompt_run_id AS run_id, type, thumbs_up, rating,
        ROW_NUMBER() OVER (PARTITION BY prompt_run_id, type
                           ORDER BY (timestamp || '|' || event_id){{by_code_point}} DESC) AS recency
    FROM events WHERE project_id = ? AND experiment_id = ?
        AND ((type = 'feedback' AND thumbs_up IN (0, 1)) OR (type = 'rating' AND rating BETWEEN -{LIMIT} AND {LIMIT}))),
latest AS (
    SELECT run_id,
        MAX(CASE WHEN type = 'feedback' THEN CAST(thumbs_up AS INTEGER) END) AS thumbs,
        MAX(CASE WHEN type = 'rating' THEN CAST(rating AS DOUBLE PRECISION) END) AS rating
    FROM ranked WHERE recency = 1 GROUP BY run_id),
per_run AS (
    SELECT r.variant, r.external_user_id AS user_id, COALESCE(x.clicked, 0) AS clicked,
        COALESCE(x.converted, 0) AS converted, l.thumbs, l.rating, x.engagement,
        {_valid("r.latency_ms", "0")} AS latency,
        {", ".join(f"{expression} AS {name}" for name, expression in _USAGE_COLUMNS.items())}
    FROM runs r LEFT JOIN run_events x ON x.run_id = r.id LEFT JOIN latest l ON l.run_id = r.id
    WHERE r.project_id = ? AND r.experiment_id = ?),
means AS (
    SELECT variant, AVG(rating) AS rating, AVG(engagement) AS engagement,
        {", ".join(f"AVG({name}) AS {name}" for name in USAGE_METRICS)},
        {
    ", ".join(
        f"AVG(CASE WHEN {name} IS NOT NULL THEN CAST(converted AS DOUBLE PRECISION) END) AS {name}_converted"
        for name in USAGE_METRICS
    )
}
    FROM per_run GROUP BY variant)
"""


def _deviations(column: str, mean: str) -> str:
    return f"SUM(({column} - {mean}) * ({column} - {mean}))"


_VARIANTS = (
    _PER_RUN
    + """
SELECT p.variant, COUNT(*), COUNT(DISTINCT p.user_id),
    SUM(p.clicked), COUNT(DISTINCT CASE WHEN p.clicked = 1 THEN p.user_id END),
    SUM(p.converted), COUNT(DISTINCT CASE WHEN p.converted = 1 THEN p.user_id END),
    COUNT(p.thumbs), SUM(p.thumbs), COUNT(p.latency),
"""
    + ",\n".join(
        f"    COUNT(p.{name}), MAX(a.{name}), {_deviations(f'p.{name}', f'a.{name}')}"
        for name in ("rating", "engagement")
    )
    + ",\n"
    + ",\n".join(
        f"    COUNT(p.{name}), MAX(a.{name}), {_deviations(f'p.{name}', f'a.{name}')}, MAX(a.{name}_converted),"
        f" SUM(CASE WHEN p.{name} IS NOT NULL THEN (p.converted - a.{name}_converted)"
        f" * (p.converted - a.{name}_converted) END),"
        f" SUM((p.{name} - a.{name}) * (p.converted - a.{name}_converted))"
        for name in USAGE_METRICS
    )
    + "\nFROM per_run p JOIN means a ON a.variant = p.variant GROUP BY p.variant"
)

_EVENTS = f"""
SELECT r.variant, e.type, COUNT(*),
    SUM(CASE WHEN e.type = 'feedback' AND e.thumbs_up IS NOT NULL AND NOT (e.thumbs_up IN (0, 1)) THEN 1 ELSE 0 END),
    SUM(CASE WHEN e.type = 'rating' AND e.rating IS NOT NULL
             AND NOT (e.rating BETWEEN -{LIMIT} AND {LIMIT}) THEN 1 ELSE 0 END),
    SUM(CASE WHEN e.type = 'engagement' AND e.engagement_score IS NOT NULL
             AND NOT (e.engagement_score BETWEEN -{LIMIT} AND {LIMIT}) THEN 1 ELSE 0 END)
FROM events e JOIN runs r ON r.id = e.prompt_run_id AND r.project_id = e.project_id
WHERE e.project_id = ? AND e.experiment_id = ? AND r.experiment_id = ?
GROUP BY r.variant, e.type
"""

_LATENCY = f"""
SELECT variant, position, latency FROM (
    SELECT variant, CAST(latency_ms AS DOUBLE PRECISION) AS latency,
        ROW_NUMBER() OVER (PARTITION BY variant ORDER BY latency_ms) AS position
    FROM runs WHERE project_id = ? AND experiment_id = ? AND latency_ms BETWEEN 0 AND {LIMIT}) ranked
WHERE position IN ({{positions}})
"""


def pg_fetch(conn: Any) -> Fetch:
    """``Fetch`` over a psycopg connection."""

    def fetch(sql: str, args: Sequence[Any]) -> list[Any]:
        rows: list[Any] = conn.execute(sql.encode(), tuple(args)).fetchall()
        return rows

    return fetch


def _number(value: Any) -> float:
    return 0.0 if value is None else float(value)


def read_aggregates(dialect: Dialect, fetch: Fetch, project_id: str, experiment_id: str) -> Aggregates:
    """Every variant's aggregates of one experiment, in three queries (call it inside one snapshot).

    Example:
        ```python
        fetch = lambda sql, args: db.execute(sql, args).fetchall()  # noqa: E731
        aggregates = read_aggregates(SQLITE, fetch, "default", experiment_id)
        ```
    """
    aggregates = Aggregates()
    for row in fetch(dialect.sql(_VARIANTS), [project_id, experiment_id] * 3):
        name = str(row[0])
        counts = [int(_number(value)) for value in row[1:10]]
        variant = VariantAggregate(name)
        (
            variant.runs,
            variant.users,
            variant.clicked_runs,
            variant.clicked_users,
            variant.converted_runs,
            variant.converted_users,
            variant.votes,
            variant.thumbs_up,
            variant.latency_n,
        ) = counts
        column = 10
        for metric in ("rating", "engagement"):
            n, mean, deviations = row[column : column + 3]
            setattr(variant, metric, Summary(int(n), _number(mean), _number(deviations)))
            column += 3
        for metric in USAGE_METRICS:
            n, mean, deviations, converted, converted_deviations, cross = row[column : column + 6]
            variant.usage[metric] = RatioSummary(
                int(n), _number(mean), _number(converted), _number(deviations), _number(converted_deviations),
                _number(cross),
            )  # fmt: skip
            column += 6
        aggregates.variants[name] = variant
    for name, kind, count, thumbs, rating, engagement in fetch(
        dialect.sql(_EVENTS), [project_id, experiment_id, experiment_id]
    ):
        aggregates.variants[str(name)].events[str(kind)] = int(count)
        for field, excluded in (("thumbs_up", thumbs), ("rating", rating), ("engagement_score", engagement)):
            if excluded:
                aggregates.excluded[field] = aggregates.excluded.get(field, 0) + int(excluded)
    plans = {name: latency_estimates(v.latency_n) for name, v in aggregates.variants.items()}
    positions = sorted({rank for per in plans.values() for plan in per.values() for rank in plan.ranks()})
    if positions:
        values: dict[str, dict[int, float]] = {}
        query = dialect.sql(_LATENCY).replace("{positions}", ",".join(str(rank) for rank in positions))
        for name, position, latency in fetch(query, [project_id, experiment_id]):
            values.setdefault(str(name), {})[int(position)] = float(latency)
        for name, per in plans.items():
            aggregates.variants[name].latency = _estimates(per, values.get(name, {}))
    return aggregates


def _estimates(plans: dict[str, QuantilePlan], values: dict[int, float]) -> dict[str, dict[str, Any]]:
    return {label: {"n": plan.n, **plan.estimate(values)} for label, plan in plans.items()}


_TIMESERIES_RUNS = """
SELECT r.variant, {day} AS day, COUNT(*), COUNT(DISTINCT r.external_user_id)
FROM runs r WHERE r.project_id = ? AND r.experiment_id = ? GROUP BY r.variant, {day}
"""
_TIMESERIES_CONVERSIONS = """
SELECT r.variant, substr(e.timestamp, 1, 10) AS day, COUNT(*)
FROM events e JOIN runs r ON r.id = e.prompt_run_id AND r.project_id = e.project_id
WHERE e.project_id = ? AND e.experiment_id = ? AND r.experiment_id = ? AND e.type = 'conversion'
GROUP BY r.variant, substr(e.timestamp, 1, 10)
"""
# Per user (within a variant): the day of their first run, and of their first conversion (never before the first
# run: a client clock behind the server's would otherwise count a conversion before its user).
_TIMESERIES_USERS = """
WITH user_runs AS (
    SELECT r.variant, r.external_user_id AS user_id, MIN({day}) AS first_run
    FROM runs r WHERE r.project_id = ? AND r.experiment_id = ? AND r.external_user_id IS NOT NULL
    GROUP BY r.variant, r.external_user_id),
user_conversions AS (
    SELECT r.variant, r.external_user_id AS user_id, MIN(substr(e.timestamp, 1, 10)) AS first_conversion
    FROM events e JOIN runs r ON r.id = e.prompt_run_id AND r.project_id = e.project_id
    WHERE e.project_id = ? AND e.experiment_id = ? AND r.experiment_id = ? AND e.type = 'conversion'
        AND r.external_user_id IS NOT NULL
    GROUP BY r.variant, r.external_user_id)
SELECT u.variant, u.first_run, 'new_users', COUNT(*) FROM user_runs u GROUP BY u.variant, u.first_run
UNION ALL
SELECT u.variant, CASE WHEN c.first_conversion > u.first_run THEN c.first_conversion ELSE u.first_run END,
    'converted_users', COUNT(*)
FROM user_runs u JOIN user_conversions c ON c.variant = u.variant AND c.user_id = u.user_id
GROUP BY u.variant, CASE WHEN c.first_conversion > u.first_run THEN c.first_conversion ELSE u.first_run END
"""


def read_timeseries(
    dialect: Dialect, fetch: Fetch, project_id: str, experiment_id: str
) -> dict[tuple[str, str], dict[str, int]]:
    """Daily counts per (UTC date, variant): runs, users, conversions, new_users and converted_users."""
    days: dict[tuple[str, str], dict[str, int]] = {}

    def add(variant: Any, day: Any, field: str, count: Any) -> None:
        row = days.setdefault((str(day), str(variant)), dict.fromkeys(
            ("runs", "users", "conversions", "new_users", "converted_users"), 0
        ))  # fmt: skip
        row[field] += int(count)

    runs_query = dialect.sql(_TIMESERIES_RUNS.replace("{day}", dialect.run_day))
    for variant, day, runs, users in fetch(runs_query, [project_id, experiment_id]):
        add(variant, day, "runs", runs)
        add(variant, day, "users", users)
    for variant, day, count in fetch(dialect.sql(_TIMESERIES_CONVERSIONS), [project_id, experiment_id, experiment_id]):
        add(variant, day, "conversions", count)
    query = dialect.sql(_TIMESERIES_USERS.replace("{day}", dialect.run_day))
    for variant, day, field, count in fetch(
        query, [project_id, experiment_id, project_id, experiment_id, experiment_id]
    ):
        add(variant, day, str(field), count)
    return days
