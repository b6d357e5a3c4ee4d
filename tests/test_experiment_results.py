"""Experiment results end to end: runs and events go in through the SDK over HTTP, the results come back typed,
and every figure is checked against an independent computation (statsmodels / SciPy) on the same data."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import pytest

from promptstream import ExperimentResults, NotFoundError, PromptStreamClient

from .helpers import fast

scipy_stats = pytest.importorskip("scipy.stats")
proportion = pytest.importorskip("statsmodels.stats.proportion")


def two_variant_experiment(server: Any) -> tuple[str, str]:
    prompt = server.store.create_prompt("default", "greeting", "Hello {{name}}")
    server.store.add_version("default", prompt["prompt_id"], "Hi there {{name}}!")
    from promptstream.server._wire import VariantSpec

    experiment = server.store.create_experiment(
        "default", prompt["prompt_id"], [VariantSpec(1, 1.0), VariantSpec(2, 1.0)]
    )
    return prompt["prompt_id"], experiment["experiment_id"]


def test_results_match_an_independent_computation(server: Any, client_factory: Any, spool_dir: Path) -> None:
    prompt_id, experiment_id = two_variant_experiment(server)
    client: PromptStreamClient = client_factory(server.url, agent_config=fast(spool_dir))
    rng = random.Random(7)
    truth: dict[str, dict[str, Any]] = {
        v: {"runs": 0, "users": set(), "clicked_runs": 0, "converted_users": set(), "ratings": [], "engagement": []}
        for v in ("v1", "v2")
    }
    for user_number in range(600):
        user = f"user-{user_number}"
        for _ in range(rng.choice([1, 1, 2])):  # some users run the prompt twice (sticky variant)
            run = client.run_prompt(prompt_id, {"name": user}, external_user_id=user)
            facts = truth[run.variant_assigned]
            facts["runs"] += 1
            facts["users"].add(user)
            p_click = 0.30 if run.variant_assigned == "v1" else 0.40
            if rng.random() < p_click:
                client.track_click(run.run_id, run.experiment_id, "cta", user)
                client.track_click(run.run_id, run.experiment_id, "cta", user)  # a second click: still one run
                facts["clicked_runs"] += 1
            if rng.random() < p_click / 2:
                client.track_conversion(run.run_id, run.experiment_id, external_user_id=user)
                facts["converted_users"].add(user)
            if rng.random() < 0.5:
                client.track_rating(run.run_id, run.experiment_id, rating=1.0)  # replaced by the next one
                rating = rng.gauss(3.5 if run.variant_assigned == "v1" else 3.8, 0.8)
                client.track_rating(run.run_id, run.experiment_id, rating=rating)
                facts["ratings"].append(rating)
            if rng.random() < 0.5:
                parts = [rng.uniform(0, 30), rng.uniform(0, 30)]
                for part in parts:  # engagement adds up per run
                    client.track_engagement(run.run_id, run.experiment_id, engagement_score=part)
                facts["engagement"].append(sum(parts))
    assert client.flush(timeout=30)

    results = client.get_experiment_results(experiment_id)
    assert isinstance(results, ExperimentResults)
    assert results.control == "v1" and [v.variant for v in results.variants] == ["v1", "v2"]
    control, treatment = results.variant("v1"), results.variant("v2")
    for variant in (control, treatment):
        facts = truth[variant.variant]
        assert variant.runs == facts["runs"] and variant.users == len(facts["users"])
        assert variant.click_through.per_run.successes == facts["clicked_runs"]
        assert variant.conversion.per_user.successes == len(facts["converted_users"])
        assert variant.rating.n == len(facts["ratings"])
        assert math.isclose(variant.rating.mean or 0, sum(facts["ratings"]) / len(facts["ratings"]), rel_tol=1e-12)
        assert math.isclose(
            variant.engagement.mean or 0, sum(facts["engagement"]) / len(facts["engagement"]), rel_tol=1e-12
        )

    ctr_c, ctr_t = control.click_through.per_run, treatment.click_through.per_run
    _, expected_p = proportion.proportions_ztest([ctr_t.successes, ctr_c.successes], [ctr_t.trials, ctr_c.trials])
    assert ctr_t.p_value is not None and math.isclose(ctr_t.p_value, expected_p, rel_tol=1e-9)
    assert ctr_t.lift is not None and math.isclose(ctr_t.lift, (ctr_t.rate or 0) - (ctr_c.rate or 0), rel_tol=1e-12)
    low, high = proportion.proportion_confint(ctr_t.successes, ctr_t.trials, method="wilson")
    assert math.isclose(ctr_t.ci_low, low, rel_tol=1e-9) and math.isclose(ctr_t.ci_high, high, rel_tol=1e-9)
    expected_rating_p = scipy_stats.ttest_ind(truth["v2"]["ratings"], truth["v1"]["ratings"], equal_var=False).pvalue
    assert treatment.rating.p_value is not None and math.isclose(
        treatment.rating.p_value, expected_rating_p, rel_tol=1e-9
    )
    assert control.click_through.per_run.p_value is None  # the control is not compared with itself
    assert not results.sample_ratio.mismatch  # sticky 50/50 assignment of 600 users


def test_a_broken_split_is_flagged_and_a_small_one_is_marked_early(
    server: Any, client_factory: Any, spool_dir: Path
) -> None:
    prompt_id, experiment_id = two_variant_experiment(server)
    client: PromptStreamClient = client_factory(server.url, agent_config=fast(spool_dir))
    for user_number in range(40):
        client.run_prompt(prompt_id, {"name": "x"}, external_user_id=f"u{user_number}")
    early = client.get_experiment_results(experiment_id)
    assert not early.sufficient_sample and any("too few runs" in w for w in early.warnings)
    # a 50/50 experiment whose v1 gets ten times the runs of v2: the assignment itself is broken
    db = server.database()
    with db:
        db.executemany(
            "INSERT INTO runs (id, prompt_id, experiment_id, version, variant, external_user_id, output, created_at)"
            " VALUES (?, ?, ?, 1, 'v1', NULL, '', 0)",
            [(f"extra-{i}", prompt_id, experiment_id) for i in range(400)],
        )
    db.close()
    broken = client.get_experiment_results(experiment_id)
    assert broken.sample_ratio.mismatch and broken.sample_ratio.runs_p_value is not None
    assert broken.sample_ratio.runs_p_value < 0.001
    assert broken.warnings[0].startswith("sample ratio mismatch")


def test_unknown_experiment_is_a_typed_not_found(server: Any, client_factory: Any, spool_dir: Path) -> None:
    client: PromptStreamClient = client_factory(server.url, agent_config=fast(spool_dir))
    with pytest.raises(NotFoundError) as caught:
        client.get_experiment_results("no-such-experiment")
    assert caught.value.status_code == 404
