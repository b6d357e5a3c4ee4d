"""Experiment pages: the list, ending one, and the live results page (per-variant table with intervals and lifts,
the decision and its reason, the charts), whose results part is also served alone for the page's refresh loop."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from . import _charts
from ._web import Context, Dashboard, redirect

REFRESH_SECONDS = 5
RECENT_EVENTS = 50  # a screenful to check what the SDK sends; the API and the database have the rest


async def list_experiments(dashboard: Dashboard, ctx: Context) -> Response:
    experiments = await dashboard.work.run(ctx.data.experiments, None)
    prompts = {p["prompt_id"]: p for p in await dashboard.work.run(ctx.data.prompts)}
    rows = [dict(e, prompt_name=prompts.get(e["prompt_id"], {}).get("name", "?")) for e in reversed(experiments)]
    return dashboard.render_page(ctx, "experiments.html", experiments=rows)


def results_view(results: dict[str, Any], timeseries: dict[str, Any] | None) -> dict[str, Any]:
    """What the results part of the page shows, from the results (and the time series where the server has it).

    Example:
        ```python
        view = results_view(store.experiment_results(experiment_id), None)
        assert "<svg" in view["charts"][0]["svg"]
        ```
    """
    charts = []
    if timeseries is not None:
        series, dates, runs = _charts.timeseries_charts(timeseries)
        charts.append(
            {
                "id": "conversion-over-time",
                "title": "Conversion per user as users arrive, with its always-valid interval",
                "svg": _charts.line_chart("Conversion per user as users arrive", series, x_label="users"),
            }
        )
        charts.append(
            {"id": "runs-per-day", "title": "Runs per day", "svg": _charts.bar_chart("Runs per day", dates, runs)}
        )
    charts.append(
        {
            "id": "conversion-now",
            "title": "Conversion per user now, with its interval",
            "svg": _charts.interval_chart("Conversion per user", _charts.conversion_intervals(results)),
        }
    )
    ratio = results.get("sample_ratio") or {}
    charts.append(
        {
            "id": "sample-ratio",
            "title": "Sample-ratio check: observed share of users (bars) against the weights (marks)",
            "svg": _charts.ratio_chart("Sample ratio", _charts.observed_shares(results)),
        }
    )
    return {
        "results": results,
        "decision": results.get("decision") or {},
        "ratio": ratio,
        "charts": charts,
        "variants": results.get("variants", []),
    }


async def _results_values(dashboard: Dashboard, ctx: Context, experiment_id: str) -> dict[str, Any]:
    results = await dashboard.work.run(ctx.data.results, experiment_id)
    timeseries = await dashboard.work.run(ctx.data.timeseries, experiment_id)
    return results_view(results, timeseries)


async def show_experiment(dashboard: Dashboard, ctx: Context) -> Response:
    experiment_id = ctx.request.path_params["experiment_id"]
    experiment = await dashboard.work.run(ctx.data.experiment, experiment_id)
    prompt = await dashboard.work.run(ctx.data.prompt, experiment["prompt_id"])
    values = await _results_values(dashboard, ctx, experiment_id)
    return dashboard.render_page(
        ctx, "experiment.html", experiment=experiment, prompt=prompt, refresh=REFRESH_SECONDS, **values
    )


async def live_results(dashboard: Dashboard, ctx: Context) -> Response:
    """The results part alone: what the page's script fetches every few seconds while the experiment runs."""
    experiment_id = ctx.request.path_params["experiment_id"]
    experiment = await dashboard.work.run(ctx.data.experiment, experiment_id)
    values = await _results_values(dashboard, ctx, experiment_id)
    return dashboard.render_page(ctx, "_results.html", experiment=experiment, **values)


async def end_experiment(dashboard: Dashboard, ctx: Context) -> Response:
    experiment_id = ctx.request.path_params["experiment_id"]
    await dashboard.work.run(ctx.data.end_experiment, experiment_id)
    return redirect(f"/experiments/{experiment_id}")


async def events(dashboard: Dashboard, ctx: Context) -> Response:
    """Recent events of one experiment and the project's recent rejections (with their reasons)."""
    experiments = list(reversed(await dashboard.work.run(ctx.data.experiments, None)))
    chosen = ctx.request.query_params.get("experiment_id") or (experiments[0]["experiment_id"] if experiments else "")
    recent: list[dict[str, Any]] = []
    if chosen:
        await dashboard.work.run(ctx.data.experiment, chosen)  # 404 for another project's experiment
        recent = await dashboard.work.run(ctx.data.recent_events, chosen, RECENT_EVENTS)
    rejections = await dashboard.work.run(ctx.data.recent_rejections, 100)
    return dashboard.render_page(
        ctx, "events.html", experiments=experiments, chosen=chosen, recent=recent, rejections=rejections
    )
