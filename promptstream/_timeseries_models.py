"""The experiment day by day, as ``GET /v1/experiments/{id}/timeseries`` returns it (docs/protocol.md, "Time
series"); ``client.experiments.timeseries`` gives its rows."""

from __future__ import annotations

import msgspec

__all__ = ["ExperimentTimeseries", "TimeseriesRow"]


class TimeseriesRow(msgspec.Struct, frozen=True, kw_only=True):
    """One UTC day of one variant (``client.experiments.timeseries``; docs/protocol.md, "Time series"): that day's
    counts, and the cumulative conversion rate per user with its always-valid interval and lift.

    Example:
        ```python
        for row in client.experiments.timeseries(experiment_id):
            print(row.date, row.variant, row.conversion_rate, row.ci_low, row.ci_high)
        ```
    """

    date: str
    """The UTC date, ``YYYY-MM-DD``."""
    variant: str
    """The variant's name, e.g. ``"v2"``."""
    runs: int
    """Runs created that day."""
    users: int
    """Distinct users with a run that day."""
    new_users: int
    """Users whose first run in this variant was that day."""
    conversions: int
    """Conversion events dated that day (by their timestamp)."""
    converted_users: int
    """Users who converted for the first time that day."""
    cumulative_runs: int
    """Runs up to and including that day."""
    cumulative_users: int
    """Users up to and including that day (the sum of ``new_users``)."""
    cumulative_converted_users: int
    """Users who had converted by the end of that day."""
    conversion_rate: float | None
    """Converted users over users, up to and including that day."""
    ci_low: float | None
    """Lower end of the always-valid 95% interval on ``conversion_rate``."""
    ci_high: float | None
    """Upper end of the always-valid 95% interval on ``conversion_rate``."""
    lift: float | None = None
    """``conversion_rate`` minus the control's that day; None for the control."""
    lift_ci_low: float | None = None
    """Lower end of the always-valid 95% interval on ``lift``."""
    lift_ci_high: float | None = None
    """Upper end of the always-valid 95% interval on ``lift``."""
    p_value: float | None = None
    """Always-valid p-value of the lift (not Holm-adjusted: the results' decision is)."""


class ExperimentTimeseries(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /v1/experiments/{id}/timeseries`` as it travels; ``client.experiments.timeseries`` returns ``days``."""

    experiment_id: str
    control: str | None
    days: list[TimeseriesRow]
