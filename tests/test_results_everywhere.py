"""The peeking-safe figures and the decision reach every reader: the endpoint, ``client.get_experiment_results()``,
the async client and ``promptstream experiments results`` show the same decision, computed over data stored by a
real server, and ``promptstream experiments plan`` plans from the shell."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import pytest

from promptstream import AsyncPromptStreamClient, PromptStreamClient
from promptstream.cli import main

from .helpers import API_KEY


def gbstats() -> tuple[Any, Any]:
    """GrowthBook's stats engine, where it installs (Python 3.10 and 3.11: it pins numpy < 2 and pandas < 2); the
    tests that compare against it skip elsewhere, the rest of this file runs everywhere."""
    return pytest.importorskip("gbstats.frequentist.tests"), pytest.importorskip("gbstats.models.statistics")


ACTIONS = {"ship", "keep_running", "no_difference", "keep_control", "stop_guardrail", "investigate"}


def seeded_experiment(server: Any, converted: dict[str, int], users: int = 1500) -> str:
    """An A/B experiment whose runs and conversions are written into the server's database (as ingestion would)."""
    prompt = server.create_prompt()
    server.store.add_version("default", prompt["prompt_id"], "Hi {{name}}")
    from promptstream.server._wire import VariantSpec

    experiment = server.store.create_experiment(
        "default", prompt["prompt_id"], [VariantSpec(1, 1.0), VariantSpec(2, 1.0)]
    )
    db = server.database()
    with db:
        for variant, conversions in converted.items():
            for number in range(users):
                run_id = f"{variant}-{number}"
                db.execute(
                    "INSERT INTO runs (id, prompt_id, experiment_id, version, variant, external_user_id, output,"
                    " created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, '', 0)",
                    (run_id, prompt["prompt_id"], experiment["experiment_id"], int(variant[1:]), variant, run_id),
                )
                if number < conversions:
                    db.execute(
                        "INSERT INTO events (event_id, type, prompt_run_id, experiment_id, timestamp, received_at)"
                        " VALUES (?, 'conversion', ?, ?, '2024-01-01T00:00:00Z', 0)",
                        (f"{run_id}-c", run_id, experiment["experiment_id"]),
                    )
    db.close()
    return str(experiment["experiment_id"])


def test_the_sdk_reads_the_decision_and_the_always_valid_interval(server: Any, client_factory: Any) -> None:
    experiment_id = seeded_experiment(server, {"v1": 150, "v2": 240})
    client: PromptStreamClient = client_factory(server.url)
    results = client.get_experiment_results(experiment_id)
    assert results.decision is not None and results.decision.action in ACTIONS
    assert results.decision.action == "ship" and results.decision.winner == "v2"
    safe = results.variant("v2").conversion.per_user.always_valid
    assert safe is not None and safe.ci_low is not None and safe.ci_high is not None and safe.p_value is not None
    gbstats_tests, gbstats_models = gbstats()
    reference = gbstats_tests.SequentialTwoSidedTTest(
        gbstats_models.ProportionStatistic(n=1500, sum=150),
        gbstats_models.ProportionStatistic(n=1500, sum=240),
        gbstats_tests.SequentialConfig(difference_type="absolute"),
    )
    low, high = reference.confidence_interval
    assert math.isclose(safe.ci_low, low, rel_tol=1e-9) and math.isclose(safe.ci_high, high, rel_tol=1e-9)
    assert math.isclose(safe.p_value, reference.p_value, rel_tol=1e-9)
    fixed = results.variant("v2").conversion.per_user.fixed_horizon
    assert fixed is not None and fixed.ci_low is not None and fixed.ci_low > safe.ci_low  # peeking safety costs width
    assert results.variant("v1").conversion.per_user.always_valid is None  # the control is not compared with itself

    async def read() -> Any:
        async with AsyncPromptStreamClient(API_KEY, base_url=server.url, spool=False) as async_client:
            return await async_client.get_experiment_results(experiment_id)

    assert asyncio.run(read()).decision == results.decision


def test_the_cli_prints_the_decision_and_its_reason(server: Any, capsys: pytest.CaptureFixture[str]) -> None:
    experiment_id = seeded_experiment(server, {"v1": 150, "v2": 150})
    argv = ["experiments", "results", experiment_id, "--base-url", server.url, "--api-key", API_KEY]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Decision: keep running — no variant differs significantly" in out and "always-valid" in out
    assert main([*argv, "--json"]) == 0
    raw = json.loads(capsys.readouterr().out)
    assert raw["decision"]["action"] == "keep_running" and raw["decision"]["winner"] is None


@pytest.mark.parametrize(
    ("argv", "users"),
    [
        (["--baseline", "0.10", "--mde", "0.02"], 7590),
        (["--baseline", "0.10", "--mde", "0.2", "--relative"], 7590),
        (["--baseline", "0.09", "--mde", "0.054"], 1097),
    ],
)
def test_plan_from_the_shell(argv: list[str], users: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["experiments", "plan", *argv, "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["users_per_variant"] == users and plan["fixed_horizon_users_per_variant"] < users
    assert main(["experiments", "plan", *argv]) == 0
    assert f"{users:,} users per variant" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["--baseline", "0", "--mde", "0.02"],
        ["--baseline", "0.5", "--mde", "0.6"],
        ["--baseline", "0.5", "--mde", "0"],
        ["--baseline", "0.5", "--mde", "0.1", "--variants", "1"],
        ["--baseline", "0.5", "--mde", "0.1", "--power", "1"],
    ],
)
def test_plan_refuses_impossible_inputs_in_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["experiments", "plan", *argv]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("promptstream: error: ")
