"""Ending an experiment (issue 14 §1): ``POST /v1/experiments/{id}/end`` at the reference server, idempotent; the
prompt then serves its latest version in a new default experiment; events for the ended experiment's runs are still
accepted and counted. Through the raw protocol, both clients and ``promptstream experiments end``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptstream import AsyncPromptStreamClient, NotFoundError, PromptStreamClient
from promptstream.cli import main
from promptstream.server import VariantSpec

from .helpers import API_KEY, wait_until

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def _end(server: Any, experiment_id: str) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/experiments/{experiment_id}/end", headers=AUTH)


def test_end_over_the_protocol_is_idempotent_and_starts_a_default_experiment(server: Any) -> None:
    prompt = server.store.create_prompt("default", "p", "Hello {{name}}")
    server.store.add_version("default", prompt["prompt_id"], "Hi {{name}}")
    experiment = server.store.create_experiment(
        "default", prompt["prompt_id"], [VariantSpec(version=1), VariantSpec(version=2)]
    )
    first = _end(server, experiment["experiment_id"])
    assert first.status_code == 200, first.text
    ended = first.json()
    assert ended["experiment_id"] == experiment["experiment_id"]
    assert ended["active"] is False and isinstance(ended["ended_at"], float)
    again = _end(server, experiment["experiment_id"])
    assert again.status_code == 200 and again.json() == ended  # unchanged: the first ended_at stays
    live = [e for e in server.store.list_experiments("default", prompt["prompt_id"]) if e["active"]]
    assert len(live) == 1 and live[0]["is_default"] and live[0]["experiment_id"] != experiment["experiment_id"]
    # the first end started one default experiment; the second started none
    assert server.store.count("experiments", "WHERE prompt_id = ?", [prompt["prompt_id"]]) == 3


def test_end_unknown_or_unauthorized_is_a_4xx(server: Any) -> None:
    missing = _end(server, "no-such-experiment")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "experiment_not_found"
    prompt = server.store.create_prompt("default", "p", "Hello")
    refused = httpx.post(f"{server.url}/v1/experiments/{prompt['experiment_id']}/end")
    assert refused.status_code == 401
    assert server.store.get_experiment("default", prompt["experiment_id"])["active"]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(versions=st.integers(1, 4), ended=st.sampled_from(["default", "created", "superseded"]))
def test_runs_after_end_go_to_the_latest_version_and_old_events_still_count(
    server: Any, spool_dir: Path, versions: int, ended: str
) -> None:
    with PromptStreamClient(API_KEY, base_url=server.url, spool_dir=spool_dir, flush_interval=0.05) as client:
        prompt = client.prompts.create("gen", "v1 {{name}}")
        for n in range(2, versions + 1):
            client.prompts.add_version(prompt.prompt_id, f"v{n} {{{{name}}}}")
        target = prompt.experiment_id
        if ended != "default":
            target = client.experiments.create(prompt.prompt_id, [1]).experiment_id
        if ended == "superseded":
            client.experiments.create(prompt.prompt_id, [versions])
        before = client.run_prompt(prompt.prompt_id, {"name": "Ada"}, external_user_id="u1")
        was_live = before.experiment_id == target
        ended_experiment = client.experiments.end(target)
        assert not ended_experiment.active and ended_experiment.ended_at is not None
        assert client.experiments.end(target) == ended_experiment
        after = client.run_prompt(prompt.prompt_id, {"name": "Ada"}, external_user_id="u1")
        live = [e for e in client.experiments.list(prompt.prompt_id) if e.active]
        assert [e.experiment_id for e in live] == [after.experiment_id] and after.experiment_id != target
        if was_live:  # the prompt falls back to a default experiment: the latest version
            assert live[0].is_default and after.output == f"v{versions} Ada"
        else:
            assert after.experiment_id == before.experiment_id  # ending a finished one changes nothing
        event_id = client.track_conversion(before.run_id, before.experiment_id)
        assert client.flush(10)
    assert wait_until(lambda: event_id in server.store.event_ids())
    results = server.store.experiment_results("default", before.experiment_id)
    assert sum(v["conversion"]["per_run"]["successes"] for v in results["variants"]) == 1


def test_client_end_unknown_raises_not_found(server: Any, spool_dir: Path) -> None:
    client = PromptStreamClient(API_KEY, base_url=server.url, spool_dir=spool_dir)
    with client, pytest.raises(NotFoundError):
        client.experiments.end("no-such-experiment")


def test_async_client_ends_experiments(server: Any, spool_dir: Path) -> None:
    async def scenario() -> None:
        async with AsyncPromptStreamClient(API_KEY, base_url=server.url, spool_dir=spool_dir) as client:
            prompt = await client.prompts.create("async-end", "Hey {{name}}")
            experiment = await client.experiments.create(prompt.prompt_id, [1])
            ended = await client.experiments.end(experiment.experiment_id)
            assert not ended.active and ended.ended_at is not None
            assert await client.experiments.end(experiment.experiment_id) == ended
            assert not (await client.experiments.get(experiment.experiment_id)).active
            run = await client.run_prompt(prompt.prompt_id, {"name": "Ada"})
            assert run.experiment_id != experiment.experiment_id
            with pytest.raises(NotFoundError):
                await client.experiments.end("no-such-experiment")

    asyncio.run(scenario())


def test_cli_experiments_end(server: Any, capsys: pytest.CaptureFixture[str]) -> None:
    prompt = server.store.create_prompt("default", "cli-end", "Hello {{name}}")
    connection = ["--base-url", server.url, "--api-key", API_KEY]
    assert main(["experiments", "end", prompt["experiment_id"], "--json", *connection]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["experiment_id"] == prompt["experiment_id"] and shown["active"] is False and shown["ended_at"]
    assert not server.store.get_experiment("default", prompt["experiment_id"])["active"]
    assert main(["experiments", "end", prompt["experiment_id"], *connection]) == 0
    assert f"{prompt['experiment_id']}  prompt {prompt['prompt_id']}  ended" in capsys.readouterr().out
    assert main(["experiments", "end", "no-such-experiment", *connection]) == 1
    assert "no-such-experiment" in capsys.readouterr().err
