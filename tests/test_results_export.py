"""Results as data (issue 18 §2): rows, pandas and polars frames, CSV, the notebook's HTML and the short repr, all
checked against the results JSON the real reference server answered for generated experiments."""

from __future__ import annotations

import csv
import io
import json
import math
import random
import subprocess
import sys
from typing import Any

import httpx
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import promptstream
from promptstream import ExperimentResults, MissingDependencyError, PromptStreamClient
from promptstream._results_export import (
    COLUMNS,
    require,
    timeseries_rows,
    timeseries_to_dict,
    timeseries_to_pandas,
    timeseries_to_polars,
)
from promptstream.cli import main
from promptstream.cli._render import render_results

from .helpers import API_KEY, REPO_ROOT

# metric name -> where its figure is in one variant of the results JSON (an independent reading of the protocol)
METRIC_PATHS = {
    "click_through_per_run": ("click_through", "per_run"),
    "click_through_per_user": ("click_through", "per_user"),
    "conversion_per_run": ("conversion", "per_run"),
    "conversion_per_user": ("conversion", "per_user"),
    "thumbs_up": ("thumbs_up",),
    "rating": ("rating",),
    "engagement": ("engagement",),
    "latency_median": ("latency_ms", "median"),
    "latency_p95": ("latency_ms", "p95"),
    **{
        f"{usage}_{per}": (usage, per)
        for usage in ("input_tokens", "output_tokens", "tokens", "cost_usd")
        for per in ("per_run", "per_conversion")
    },
}


def _figure(variant: dict[str, Any], metric: str) -> dict[str, Any]:
    figure: Any = variant
    for part in METRIC_PATHS[metric]:
        figure = figure[part]
    return dict(figure)


def _expected(raw: dict[str, Any], variant_name: str, metric: str, column: str) -> Any:
    """What a column must hold, read straight from the server's JSON."""
    variant = next(v for v in raw["variants"] if v["variant"] == variant_name)
    figure = _figure(variant, metric)
    fixed, always = figure.get("fixed_horizon") or {}, figure.get("always_valid") or {}
    return {
        "experiment_id": raw["experiment_id"],
        "variant": variant_name,
        "is_control": variant_name == raw["control"],
        "metric": metric,
        "kind": "rate" if "successes" in figure else "mean" if "mean" in figure else "value",
        "runs": variant["runs"],
        "users": variant["users"],
        "n": figure.get("trials", figure.get("n")),
        "successes": figure.get("successes"),
        "estimate": figure.get("rate", figure.get("mean", figure.get("value"))),
        "ci_low": figure.get("ci_low"),
        "ci_high": figure.get("ci_high"),
        "lift": figure.get("lift"),
        "relative_lift": figure.get("relative_lift"),
        "fixed_horizon_ci_low": fixed.get("ci_low"),
        "fixed_horizon_ci_high": fixed.get("ci_high"),
        "fixed_horizon_p_value": figure.get("p_value", fixed.get("p_value")),
        "always_valid_ci_low": always.get("ci_low"),
        "always_valid_ci_high": always.get("ci_high"),
        "always_valid_p_value": always.get("p_value"),
        "always_valid_adjusted_p_value": always.get("adjusted_p_value"),
        "guardrail_violation": metric in variant.get("guardrail_violations", []),
    }[column]


def _same(actual: Any, expected: Any) -> bool:
    missing = actual is None or (isinstance(actual, float) and math.isnan(actual))
    if expected is None:
        return missing
    if isinstance(expected, float) or isinstance(actual, float):
        return not missing and math.isclose(float(actual), float(expected), rel_tol=1e-12, abs_tol=1e-15)
    return bool(actual == expected)


class Experiments:
    """Generated experiments on one real server: users run the prompt through the SDK and track events."""

    def __init__(self, server: Any, client: PromptStreamClient) -> None:
        self.server = server
        self.client = client

    def make(self, variants: int, users: int, seed: int) -> tuple[ExperimentResults, dict[str, Any]]:
        rng = random.Random(seed)
        prompt = self.server.create_prompt(name=f"p{seed}")
        for version in range(2, variants + 1):
            self.server.store.add_version("default", prompt["prompt_id"], f"Hello v{version} {{{{name}}}}")
        experiment = self.client.experiments.create(
            prompt["prompt_id"], [(v, rng.choice([1.0, 2.0])) for v in range(1, variants + 1)]
        )
        for user in range(users):
            run = self.client.run_prompt(prompt["prompt_id"], {"name": "x"}, external_user_id=f"u{seed}-{user}")
            if rng.random() < 0.4:
                self.client.track_click(run.run_id, run.experiment_id, label="copy")
            if rng.random() < 0.3:
                self.client.track_conversion(run.run_id, run.experiment_id)
            if rng.random() < 0.5:
                self.client.track_feedback(run.run_id, run.experiment_id, thumbs_up=rng.random() < 0.6)
            if rng.random() < 0.5:
                self.client.track_rating(run.run_id, run.experiment_id, rating=rng.choice([1, 2.5, 4, 5]))
            if rng.random() < 0.3:
                self.client.track_engagement(run.run_id, run.experiment_id, engagement_score=rng.uniform(0, 50))
        assert self.client.flush(timeout=20)
        raw = httpx.get(
            f"{self.server.url}/v1/experiments/{experiment.experiment_id}/results",
            headers={"Authorization": f"Bearer {API_KEY}"},
        ).json()
        return self.client.get_experiment_results(experiment.experiment_id), raw


@pytest.fixture
def experiments(server: Any, client: PromptStreamClient) -> Experiments:
    return Experiments(server, client)


def _frames_match_the_json(results: ExperimentResults, raw: dict[str, Any]) -> None:
    rows = results.rows()
    assert len(rows) == len(raw["variants"]) * len(METRIC_PATHS)
    assert [(r["variant"], r["metric"]) for r in rows] == [
        (v["variant"], m) for v in raw["variants"] for m in METRIC_PATHS
    ]
    names = [name for name, _ in COLUMNS]
    for row in rows:
        assert list(row) == names
        for column in names:
            assert _same(row[column], _expected(raw, row["variant"], row["metric"], column)), (row, column)
    columns = results.to_dict()
    assert list(columns) == names and all(len(values) == len(rows) for values in columns.values())
    json.dumps(columns)  # plain values only

    frame = results.to_pandas()
    assert list(frame.columns) == names and len(frame) == len(rows)
    for record in frame.to_dict("records"):
        for column in names:
            value = record[column]
            value = None if value is not None and _is_pandas_na(value) else value
            assert _same(value, _expected(raw, record["variant"], record["metric"], column)), (record, column)

    polars_frame = results.to_polars()
    assert polars_frame.columns == names and polars_frame.height == len(rows)
    for record in polars_frame.to_dicts():
        for column in names:
            assert _same(record[column], _expected(raw, record["variant"], record["metric"], column)), column


def _is_pandas_na(value: Any) -> bool:
    import pandas

    return not isinstance(value, (str, bool)) and bool(pandas.isna(value))


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(variants=st.integers(2, 4), users=st.integers(0, 60), seed=st.integers(0, 2**31))
def test_rows_and_frames_hold_what_the_server_answered(
    experiments: Experiments, variants: int, users: int, seed: int
) -> None:
    pytest.importorskip("pandas")
    pytest.importorskip("polars")
    results, raw = experiments.make(variants, users, seed)
    _frames_match_the_json(results, raw)


def test_pandas_frame_dtypes_keep_counts_whole_and_undefined_figures_missing(experiments: Experiments) -> None:
    pytest.importorskip("pandas")
    results, _ = experiments.make(2, 12, seed=7)
    frame = results.to_pandas()
    assert str(frame["runs"].dtype) == "Int64" and str(frame["successes"].dtype) == "Int64"
    assert str(frame["estimate"].dtype) == "float64" and str(frame["is_control"].dtype) == "bool"
    control = frame[frame.is_control]
    assert control["lift"].isna().all() and control["always_valid_p_value"].isna().all()
    means = frame[frame.kind == "mean"]
    assert means["successes"].isna().all()


def test_csv_from_the_command_line_reads_back_to_the_rows(
    server: Any, experiments: Experiments, capsys: pytest.CaptureFixture[str]
) -> None:
    results, raw = experiments.make(3, 40, seed=11)
    argv = ["--base-url", server.url, "--api-key", API_KEY]
    assert main(["experiments", "results", results.experiment_id, *argv, "--format", "csv"]) == 0
    parsed = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(parsed) == len(results.rows())
    for line, row in zip(parsed, results.rows(), strict=True):
        for name, kind in COLUMNS:
            cell = line[name]
            if row[name] is None:
                assert cell == ""
            elif kind == "float":
                assert float(cell) == row[name]  # full precision
            elif kind == "int":
                assert int(cell) == row[name]
            elif kind == "bool":
                assert cell == ("true" if row[name] else "false")
            else:
                assert cell == row[name]
    assert main(["experiments", "results", results.experiment_id, *argv, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == raw
    assert main(["experiments", "results", results.experiment_id, *argv, "--format", "table"]) == 0
    assert capsys.readouterr().out == render_results(results) + "\n"
    assert main(["experiments", "results", results.experiment_id, *argv, "--json", "--format", "csv"]) == 1


def test_notebook_html_is_the_cli_table_escaped(experiments: Experiments) -> None:
    results, _ = experiments.make(2, 30, seed=3)
    page = results._repr_html_()
    text = render_results(results)
    for line in text.splitlines():
        if not line.strip() or line.startswith(("variant", "-", "Decision", "(", "warning")):
            continue  # the tables' headers are <th> (below), the notes paragraphs
        for cell in line.split("  "):
            if cell.strip():
                assert f"<td>{cell.strip()}</td>" in page.replace("&#x27;", "'")
    headers = [line for line in text.splitlines() if line.startswith("variant")]
    assert len(headers) == 2  # the rates, and latency, tokens and cost
    assert all(f"<th>{name.strip()}</th>" in page for line in headers for name in line.split("  ") if name.strip())
    assert "Decision:" in page and "<script" not in page
    short = repr(results)
    assert "\n" not in short and len(short) < 300
    assert results.experiment_id in short and all(v.variant in short for v in results.variants)


@given(name=st.text(min_size=1, max_size=20))
def test_html_escapes_whatever_the_server_sent(name: str) -> None:
    results = ExperimentResults(
        experiment_id=f"<b>{name}</b>",
        prompt_id="p&<",
        control=None,
        variants=[],
        sample_ratio={"runs_p_value": None, "users_p_value": None, "mismatch": False},  # type: ignore[arg-type]
        sufficient_sample=False,
        warnings=[f"<script>{name}</script>"],
    )
    page = results._repr_html_()
    assert "<script>" not in page and "<b>" not in page


def test_a_missing_extra_is_a_typed_error_naming_it() -> None:
    code = (
        "import sys; sys.modules['pandas'] = None; sys.modules['polars'] = None\n"
        "from promptstream import MissingDependencyError, ExperimentResults\n"
        "from promptstream._results_export import results_to_pandas, results_to_polars\n"
        "for export, extra in ((results_to_pandas, 'pandas'), (results_to_polars, 'polars')):\n"
        "    try:\n"
        "        export(None)\n"
        "    except MissingDependencyError as exc:\n"
        '        assert exc.extra == extra and f"promptstream[{extra}]" in str(exc), exc\n'
        "        assert isinstance(exc, ImportError)\n"
        "    else:\n"
        "        raise AssertionError(extra)\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert done.stdout.strip() == "ok", done.stderr
    with pytest.raises(MissingDependencyError, match=r"promptstream\[no_such_module_x\]"):
        require("no_such_module_x")


def test_import_promptstream_imports_no_dataframe_library() -> None:
    code = (
        "import sys, promptstream\nprint(sorted(m for m in ('pandas', 'polars', 'langchain_core') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert done.stdout.strip() == "[]", done.stderr


# -- the time series: pure row shaping (the server's points, whatever their nesting) -----------------------------

points_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "date": st.dates().map(str),
            "variant": st.sampled_from(["v1", "v2", "v3"]),
            "runs": st.integers(0, 10**6),
            "users": st.integers(0, 10**6),
            "conversion": st.fixed_dictionaries(
                {
                    "rate": st.none() | st.floats(0, 1),
                    "ci_low": st.floats(0, 1),
                    "ci_high": st.floats(0, 1),
                }
            ),
        }
    ),
    max_size=30,
)


@given(points=points_strategy)
def test_timeseries_rows_are_flat_and_sorted_by_day_then_variant(points: list[dict[str, Any]]) -> None:
    rows = timeseries_rows(points)
    assert len(rows) == len(points)
    assert [(r["date"], r["variant"]) for r in rows] == sorted((p["date"], p["variant"]) for p in points)
    flat = {"date", "variant", "runs", "users", "conversion_rate", "conversion_ci_low", "conversion_ci_high"}
    for row in rows:
        assert set(row) == flat
    flattened = sorted(
        repr((p["date"], p["variant"], p["runs"], p["conversion"]["rate"], p["conversion"]["ci_high"])) for p in points
    )
    assert (
        sorted(repr((r["date"], r["variant"], r["runs"], r["conversion_rate"], r["conversion_ci_high"])) for r in rows)
        == flattened
    )


@settings(max_examples=25)
@given(points=points_strategy)
def test_timeseries_frames_keep_every_value(points: list[dict[str, Any]]) -> None:
    pytest.importorskip("pandas")
    frame = timeseries_to_pandas(points)
    assert len(frame) == len(points)
    if points:
        assert sorted(frame["runs"].tolist()) == sorted(p["runs"] for p in points)
        assert frame["conversion_rate"].isna().sum() == sum(p["conversion"]["rate"] is None for p in points)


@pytest.fixture
def kernel_env(server: Any, spool_dir: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTSTREAM_API_KEY", API_KEY)
    monkeypatch.setenv("PROMPTSTREAM_BASE_URL", server.url)
    monkeypatch.setenv("PROMPTSTREAM_SPOOL_DIR", str(spool_dir))
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))


def test_results_notebook_recipe_runs_in_a_real_kernel_and_shows_the_cli_table(
    experiments: Experiments, kernel_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/examples/results_notebook.ipynb, executed in an ipykernel: the results cell's HTML is the CLI's table,
    and the frames it builds hold the server's figures."""
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("pandas")
    results, raw = experiments.make(2, 40, seed=5)
    monkeypatch.setenv("EXPERIMENT_ID", results.experiment_id)
    notebook = nbformat.read(REPO_ROOT / "docs" / "examples" / "results_notebook.ipynb", as_version=4)
    nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3").execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    html_outputs = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert results._repr_html_() in html_outputs  # the results object itself, displayed
    streams = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "ExperimentResults(experiment_id=" + repr(results.experiment_id) in streams
    shown = json.loads(streams.strip().splitlines()[-1])
    by_variant = {v["variant"]: v["conversion"]["per_user"]["rate"] for v in raw["variants"]}
    assert set(shown) == set(by_variant)
    for variant, rate in by_variant.items():
        assert shown[variant] == (None if rate is None else pytest.approx(rate, rel=1e-9))


class _Day(msgspec.Struct, frozen=True, kw_only=True):
    date: str
    variant: str
    runs: int
    conversion_rate: float | None
    lift: float | None = None


@settings(max_examples=25)
@given(
    days=st.lists(
        st.builds(
            _Day,
            date=st.dates().map(str),
            variant=st.sampled_from(["v1", "v2"]),
            runs=st.integers(0, 10**9),
            conversion_rate=st.none() | st.floats(0, 1),
        ),
        max_size=20,
    )
)
def test_timeseries_of_structs_keep_their_declared_types_even_when_a_column_is_all_missing(days: list[_Day]) -> None:
    pytest.importorskip("polars")
    frame = timeseries_to_polars(days)
    if not days:
        assert frame.height == 0
        return
    schema = dict(frame.schema)
    assert str(schema["runs"]) == "Int64" and str(schema["lift"]) == "Float64"
    assert str(schema["conversion_rate"]) == "Float64" and str(schema["date"]) in ("String", "Utf8")
    assert frame["lift"].null_count() == len(days)
    assert sorted(frame["runs"].to_list()) == sorted(day.runs for day in days)
    columns = timeseries_to_dict(days)
    assert columns["date"] == sorted(day.date for day in days)


def test_timeseries_frames_from_the_real_endpoint_hold_what_it_answered(experiments: Experiments) -> None:
    pytest.importorskip("pandas")
    pytest.importorskip("polars")
    results, _ = experiments.make(3, 40, seed=11)
    experiment_id = results.experiment_id
    raw = httpx.get(
        f"{experiments.server.url}/v1/experiments/{experiment_id}/timeseries",
        headers={"Authorization": f"Bearer {API_KEY}"},
    ).json()["days"]
    points = experiments.client.experiments.timeseries(experiment_id)
    assert raw and len(points) == len(raw)
    expected = sorted(raw, key=lambda day: (day["date"], day["variant"]))
    columns = promptstream.timeseries_to_dict(points)
    assert [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)] == [
        {name: day.get(name) for name in columns} for day in expected
    ]
    assert set(columns) == {name for day in raw for name in day}
    frame = promptstream.timeseries_to_pandas(points)
    assert list(frame.columns) == list(columns) and len(frame) == len(raw)
    assert frame["cumulative_users"].tolist() == columns["cumulative_users"]
    polars_frame = promptstream.timeseries_to_polars(points)
    assert polars_frame.columns == list(columns) and polars_frame.to_dict(as_series=False) == columns
