"""An experiment's time series (``GET /v1/experiments/{id}/timeseries``, docs/protocol.md): per UTC day and variant,
the day's runs, users and conversions, and the cumulative conversion rate per user with its always-valid interval and
its lift over the control, so a chart of the confidence sequence narrowing day by day needs no statistics of its
own. The database does the per-user grouping (_results_sql.py); this module adds the days up."""

from __future__ import annotations

from typing import Any

from ._sequential import always_valid_interval, always_valid_p_value

__all__ = ["timeseries"]


def _control(experiment: dict[str, Any], variants: list[str]) -> str | None:
    configured = experiment["variants"] if isinstance(experiment["variants"], list) else []
    for item in configured:
        if isinstance(item, dict) and item.get("version") is not None and f"v{item['version']}" in variants:
            return f"v{item['version']}"
    return variants[0] if variants else None


def timeseries(experiment: dict[str, Any], days: dict[tuple[str, str], dict[str, int]]) -> dict[str, Any]:
    """The answer from daily counts per (date, variant): every variant gets a row for every day that has data."""
    dates = sorted({date for date, _ in days})
    variants = sorted({variant for _, variant in days})
    control = _control(experiment, variants)
    zero = dict.fromkeys(("runs", "users", "conversions", "new_users", "converted_users"), 0)
    totals = {variant: dict.fromkeys(("runs", "users", "converted_users", "conversions"), 0) for variant in variants}
    rows: list[dict[str, Any]] = []
    for date in dates:
        today = []
        for variant in variants:
            counts = days.get((date, variant), zero)
            total = totals[variant]
            total["runs"] += counts["runs"]
            total["users"] += counts["new_users"]
            total["converted_users"] += counts["converted_users"]
            total["conversions"] += counts["conversions"]
            users, converted = total["users"], min(total["converted_users"], total["users"])
            rate = converted / users if users else None
            interval = always_valid_interval(rate, rate * (1 - rate) / users, users) if rate is not None else None
            today.append(
                {
                    "date": date,
                    "variant": variant,
                    "runs": counts["runs"],
                    "users": counts["users"],
                    "new_users": counts["new_users"],
                    "conversions": counts["conversions"],
                    "converted_users": counts["converted_users"],
                    "cumulative_runs": total["runs"],
                    "cumulative_users": users,
                    "cumulative_converted_users": converted,
                    "conversion_rate": rate,
                    "ci_low": max(0.0, interval[0]) if interval else None,
                    "ci_high": min(1.0, interval[1]) if interval else None,
                    "lift": None,
                    "lift_ci_low": None,
                    "lift_ci_high": None,
                    "p_value": None,
                }
            )
        base = next((row for row in today if row["variant"] == control), None)
        for row in today:
            if base is None or row is base:
                continue
            _lift(row, base)
        rows.extend(today)
    return {"experiment_id": experiment["experiment_id"], "control": control, "days": rows}


def _lift(row: dict[str, Any], base: dict[str, Any]) -> None:
    """The cumulative lift over the control with its always-valid interval and p-value (as the results' lifts)."""
    rate, base_rate = row["conversion_rate"], base["conversion_rate"]
    if rate is None or base_rate is None:
        return
    lift = rate - base_rate
    row["lift"] = lift
    variance = rate * (1 - rate) / row["cumulative_users"] + base_rate * (1 - base_rate) / base["cumulative_users"]
    observations = row["cumulative_users"] + base["cumulative_users"]
    interval = always_valid_interval(lift, variance, observations)
    if interval is not None:
        row["lift_ci_low"], row["lift_ci_high"] = interval
    row["p_value"] = always_valid_p_value(lift, variance, observations)
