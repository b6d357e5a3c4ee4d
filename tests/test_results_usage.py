"""Latency, tokens and cost per variant end to end, on both backends: runs go through the SDK to a server whose
provider reports variant-dependent figures, and the results endpoint's figures are checked against NumPy and SciPy
on what the server stored; latency as a guardrail; the CLI's table; the time series against the stored rows."""

from __future__ import annotations

import asyncio
import math
import random
from typing import Any

import pytest

from promptstream import AsyncPromptStreamClient, InvalidArgumentError, NotFoundError, PromptStreamClient
from promptstream.cli import main
from promptstream.server import Completion, Prices, ServerThread
from promptstream.server._wire import VariantSpec

from .conftest import RunningServer
from .helpers import API_KEY

np = pytest.importorskip("numpy")
scipy_stats = pytest.importorskip("scipy.stats")


class VariantModel:
    """v2 (the template starting "Hi") is slower and wordier than v1."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def complete(self, template: str, inputs: dict[str, Any]) -> Completion:
        slow = template.startswith("Hi")
        return Completion(
            template,
            input_tokens=self.rng.randint(50, 150),
            output_tokens=self.rng.randint(100, 400) if slow else self.rng.randint(50, 200),
            latency_ms=self.rng.lognormvariate(math.log(900 if slow else 600), 0.4),
            model="m",
        )


def _experiment(server: RunningServer) -> tuple[str, str]:
    prompt = server.store.create_prompt("default", "greeting", "Hello {{name}}")
    server.store.add_version("default", prompt["prompt_id"], "Hi there {{name}}!")
    experiment = server.store.create_experiment(
        "default", prompt["prompt_id"], [VariantSpec(1, 1.0), VariantSpec(2, 1.0)]
    )
    return prompt["prompt_id"], experiment["experiment_id"]


@pytest.fixture
def usage_server(storage_factory: Any) -> Any:
    storage = storage_factory(provider=VariantModel(seed=4), prices=Prices.parse(["m=2/8"]))
    server = RunningServer(storage, ServerThread(storage, [API_KEY]).start())
    yield server
    server.thread.stop()


def test_usage_figures_match_numpy_and_scipy_on_what_was_stored(usage_server: RunningServer) -> None:
    server = usage_server
    prompt_id, experiment_id = _experiment(server)
    rng = random.Random(9)
    with PromptStreamClient(api_key=API_KEY, base_url=server.url) as client:
        runs = [client.run_prompt(prompt_id, {"name": f"u{i}"}, external_user_id=f"u{i}") for i in range(400)]
        converted = set()
        for run in runs:
            if rng.random() < 0.3:
                client.track_conversion(run.run_id, run.experiment_id)
                converted.add(run.run_id)
        assert client.flush(timeout=30)
        results = client.get_experiment_results(experiment_id)
    by_variant = {
        name: [run for run in runs if run.variant_assigned == name] for name in ("v1", "v2")
    }  # fmt: skip
    for name, members in by_variant.items():
        variant = results.variant(name)
        latencies = [run.latency_ms for run in members]
        assert variant.latency_ms is not None and variant.latency_ms.n == len(members)
        for label, q in (("median", 0.5), ("p95", 0.95)):
            figure = getattr(variant.latency_ms, label)
            assert figure.value == pytest.approx(float(np.quantile(latencies, q)), rel=1e-12)
            reference = scipy_stats.quantile_test(latencies, q=figure.value, p=q).confidence_interval(0.95)
            assert (figure.ci_low, figure.ci_high) == (reference.low, reference.high)
        tokens = [run.input_tokens + run.output_tokens for run in members]
        interval = scipy_stats.t.interval(0.95, len(tokens) - 1, np.mean(tokens), scipy_stats.sem(tokens))
        assert variant.tokens is not None
        assert variant.tokens.per_run.mean == pytest.approx(float(np.mean(tokens)), rel=1e-9)
        assert (variant.tokens.per_run.ci_low, variant.tokens.per_run.ci_high) == pytest.approx(interval, rel=1e-6)
        costs = [run.cost_usd for run in members]
        assert costs == pytest.approx([(r.input_tokens * 2 + r.output_tokens * 8) / 1e6 for r in members])
        conversions = sum(run.run_id in converted for run in members)
        assert variant.cost_usd is not None and variant.cost_usd.per_conversion.conversions == conversions
        assert variant.cost_usd.per_conversion.value == pytest.approx(sum(costs) / conversions, rel=1e-9)
    v1, v2 = (by_variant[name] for name in ("v1", "v2"))
    welch = scipy_stats.ttest_ind(
        [r.output_tokens for r in v2], [r.output_tokens for r in v1], equal_var=False
    )  # fmt: skip
    output = results.variant("v2").output_tokens
    assert output is not None and output.per_run.p_value == pytest.approx(float(welch.pvalue), rel=1e-6, abs=1e-300)
    median = results.variant("v2").latency_ms.median  # type: ignore[union-attr]
    assert median.lift == pytest.approx(
        float(np.median([r.latency_ms for r in v2]) - np.median([r.latency_ms for r in v1]))
    )
    assert median.always_valid is not None and median.always_valid.ci_low is not None
    assert median.always_valid.ci_low > 0  # v2 is slower, and the peeking-safe interval says so
    assert median.fixed_horizon is not None and median.fixed_horizon.ci_low is not None
    # the always-valid interval is wider than the fixed-horizon one: it holds at every look
    assert median.always_valid.ci_low < median.fixed_horizon.ci_low


def test_latency_is_a_guardrail_when_asked_for(usage_server: RunningServer) -> None:
    server = usage_server
    prompt_id, experiment_id = _experiment(server)
    with PromptStreamClient(api_key=API_KEY, base_url=server.url) as client:
        for i in range(300):
            client.run_prompt(prompt_id, {"name": f"u{i}"}, external_user_id=f"u{i}")
        default = client.get_experiment_results(experiment_id)
        guarded = client.get_experiment_results(experiment_id, guardrails=["thumbs_up", "latency_median"])
        with pytest.raises(InvalidArgumentError):
            client.get_experiment_results(experiment_id, guardrails="latency_median")  # type: ignore[arg-type]

        async def unknown() -> None:
            async with AsyncPromptStreamClient(api_key=API_KEY, base_url=server.url, max_retries=0) as aclient:
                await aclient.get_experiment_results(experiment_id, guardrails=["no_such_metric"])

        with pytest.raises(Exception, match="unknown guardrail metric"):
            asyncio.run(unknown())
    assert default.decision is not None and not default.decision.guardrail_violations
    assert guarded.decision is not None and guarded.decision.guardrail_metrics == ["thumbs_up", "latency_median"]
    assert [(v.variant, v.metric) for v in guarded.decision.guardrail_violations] == [("v2", "latency_median")]
    assert guarded.variant("v2").guardrail_violations == ["latency_median"]


def test_the_cli_shows_latency_tokens_and_cost(usage_server: RunningServer, capsys: pytest.CaptureFixture[str]) -> None:
    server = usage_server
    prompt_id, experiment_id = _experiment(server)
    with PromptStreamClient(api_key=API_KEY, base_url=server.url) as client:
        for i in range(50):
            client.run_prompt(prompt_id, {"name": f"u{i}"}, external_user_id=f"u{i}")
        results = client.get_experiment_results(experiment_id)
    argv = ["experiments", "results", experiment_id, "--base-url", server.url, "--api-key", API_KEY]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "latency p50 ms [95% CI]" in out and "cost / conversion" in out
    median = results.variant("v1").latency_ms.median  # type: ignore[union-attr]
    assert f"{median.value:,.0f} [{median.ci_low:,.0f}, {median.ci_high:,.0f}]" in out
    cost = results.variant("v2").cost_usd.per_run.mean  # type: ignore[union-attr]
    assert f"${cost:,.6f}" in out


def test_the_time_series_counts_what_was_stored_day_by_day(server: RunningServer) -> None:
    prompt_id, experiment_id = _experiment(server)
    rng = random.Random(2)
    day = 86_400.0
    start = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    rows, conversions = [], []
    for number in range(300):
        user = f"u{rng.randint(0, 120)}"
        variant = "v1" if int(user[1:]) % 2 else "v2"
        created = start + rng.randint(0, 3) * day + rng.uniform(0, day - 1)
        rows.append((f"r{number}", prompt_id, experiment_id, int(variant[1]), variant, user, "", created))
        if rng.random() < 0.25:
            when = created + rng.uniform(0, 2 * day)
            conversions.append((f"c{number}", f"r{number}", when))
    db = server.database()
    with db:
        db.executemany(
            "INSERT INTO runs (id, prompt_id, experiment_id, version, variant, external_user_id, output,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        db.executemany(
            "INSERT INTO events (event_id, type, prompt_run_id, experiment_id, timestamp, received_at)"
            " VALUES (?, 'conversion', ?, ?, ?, 0)",
            [(event_id, run_id, experiment_id, _stamp(when)) for event_id, run_id, when in conversions],
        )
    db.close()
    with PromptStreamClient(api_key=API_KEY, base_url=server.url) as client:
        series = client.experiments.timeseries(experiment_id)
        with pytest.raises(NotFoundError):
            client.experiments.timeseries("no-such-experiment")

    async def read() -> Any:
        async with AsyncPromptStreamClient(api_key=API_KEY, base_url=server.url) as client:
            return await client.experiments.timeseries(experiment_id)

    assert asyncio.run(read()) == series
    runs_of = {row[0]: row for row in rows}
    dates = sorted({_stamp(row[7])[:10] for row in rows} | {_stamp(when)[:10] for _, _, when in conversions})
    assert [row.date for row in series] == [date for date in dates for _ in ("v1", "v2")]
    for row in series:
        mine = [r for r in rows if r[4] == row.variant]
        assert row.runs == sum(_stamp(r[7])[:10] == row.date for r in mine)
        assert row.users == len({r[5] for r in mine if _stamp(r[7])[:10] == row.date})
        assert row.conversions == sum(
            _stamp(when)[:10] == row.date for _, run_id, when in conversions if runs_of[run_id][4] == row.variant
        )
        first_run: dict[str, str] = {}
        for r in mine:
            first_run[r[5]] = min(first_run.get(r[5], "9999"), _stamp(r[7])[:10])
        first_conversion: dict[str, str] = {}
        for _, run_id, when in conversions:
            run = runs_of[run_id]
            if run[4] == row.variant:
                first_conversion[run[5]] = min(first_conversion.get(run[5], "9999"), _stamp(when)[:10])
        users = [u for u, d in first_run.items() if d <= row.date]
        converted = [u for u, d in first_conversion.items() if max(d, first_run[u]) <= row.date]
        assert row.cumulative_users == len(users) and row.cumulative_converted_users == len(converted)
        if users:
            assert row.conversion_rate == pytest.approx(len(converted) / len(users))
            assert row.ci_low is not None and row.ci_high is not None
            assert row.ci_low <= row.conversion_rate <= row.ci_high
        if row.variant == "v2" and row.lift is not None:
            assert row.lift_ci_low is not None and row.lift_ci_low <= row.lift <= row.lift_ci_high  # type: ignore[operator]


def _stamp(epoch: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
