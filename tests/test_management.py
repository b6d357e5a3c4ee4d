"""Prompt and experiment management from Python (issue 14 §1): typed methods on both clients, lookup by id or
name, and the CLI built on them (``--json`` on every list command, usage errors exit 2)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from promptstream import (
    AsyncPromptStreamClient,
    Experiment,
    InvalidArgumentError,
    NotFoundError,
    Prompt,
    PromptNotFoundError,
    PromptStreamClient,
    PromptVersion,
    Variant,
)
from promptstream.cli import main

from .helpers import API_KEY


def test_prompts_and_experiments_round_trip_typed(server: Any, spool_dir: Path) -> None:
    with PromptStreamClient(API_KEY, base_url=server.url, spool_dir=spool_dir) as client:
        prompt = client.prompts.create("welcome", "Hello {{name}}")
        assert isinstance(prompt, Prompt) and prompt.latest_version == 1 and prompt.versions[0].inputs == ["name"]
        version = client.prompts.add_version(prompt.prompt_id, "Hi {{name}}, from {{city}}")
        assert (
            isinstance(version, PromptVersion) and version.version == 2 and sorted(version.inputs) == ["city", "name"]
        )
        assert version.template == "Hi {{name}}, from {{city}}"
        by_name = client.prompts.get("welcome")
        assert by_name.prompt_id == prompt.prompt_id and by_name == client.prompts.get(prompt.prompt_id)
        assert [v.version for v in by_name.versions] == [1, 2]
        assert prompt.prompt_id in {p.prompt_id for p in client.prompts.list()}
        experiment = client.experiments.create(prompt.prompt_id, [(1, 1.0), Variant(version=2, weight=3.0)], name="x")
        assert isinstance(experiment, Experiment) and experiment.active and experiment.name == "x"
        assert [(v.version, v.weight) for v in experiment.variants] == [(1, 1.0), (2, 3.0)]
        assert client.experiments.get(experiment.experiment_id) == experiment
        listed = client.experiments.list(prompt.prompt_id)
        assert {e.experiment_id for e in listed} >= {experiment.experiment_id, prompt.experiment_id}
        assert [e.active for e in listed if e.experiment_id == prompt.experiment_id] == [False]
        run = client.run_prompt(prompt.prompt_id, {"name": "Ada", "city": "Rome"})
        assert run.experiment_id == experiment.experiment_id
        with pytest.raises(PromptNotFoundError):
            client.prompts.get("no-such-prompt")
        with pytest.raises(NotFoundError):
            client.experiments.get("no-such-experiment")


@pytest.mark.parametrize(
    "variants",
    [[], [(0, 1.0)], [(1, 0.0)], [(1, float("inf"))], [(1, 2e6)], [("1", 1.0)], "12", [(1, 1.0)] * 101],
)
def test_bad_variants_are_refused_before_any_io(variants: Any) -> None:
    client = PromptStreamClient(API_KEY, base_url="http://127.0.0.1:9", spool=False)
    with client, pytest.raises(InvalidArgumentError) as info:
        client.experiments.create("p", variants)
    assert info.value.argument == "variants"


def test_async_management_matches_sync(server: Any, spool_dir: Path) -> None:
    async def scenario() -> tuple[Prompt, Experiment, list[Experiment]]:
        async with AsyncPromptStreamClient(API_KEY, base_url=server.url, spool_dir=spool_dir) as client:
            prompt = await client.prompts.create("async-one", "Hey {{name}}")
            await client.prompts.add_version(prompt.prompt_id, "Yo {{name}}")
            experiment = await client.experiments.create(prompt.prompt_id, [1, 2], name="a")
            assert (await client.prompts.get("async-one")).latest_version == 2
            assert await client.experiments.get(experiment.experiment_id) == experiment
            return prompt, experiment, await client.experiments.list(prompt.prompt_id)

    prompt, experiment, listed = asyncio.run(scenario())
    assert experiment.prompt_id == prompt.prompt_id
    assert experiment.experiment_id in {e.experiment_id for e in listed}


def _cli(server: Any, capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main([*argv, "--base-url", server.url, "--api-key", API_KEY]) == 0
    return capsys.readouterr().out


def test_cli_lists_as_json_and_finds_prompts_by_name(server: Any, capsys: pytest.CaptureFixture[str]) -> None:
    created = _cli(server, capsys, "prompts", "create", "by-name", "Hello {{name}}")
    prompt_id = created.split()[0]
    assert prompt_id in _cli(server, capsys, "prompts", "show", "by-name")  # a name, not an id
    assert "version 2" in _cli(server, capsys, "prompts", "add-version", "by-name", "Hi {{name}}")
    prompts = json.loads(_cli(server, capsys, "prompts", "list", "--json"))
    assert [p["name"] for p in prompts if p["prompt_id"] == prompt_id] == ["by-name"]
    shown = json.loads(_cli(server, capsys, "prompts", "show", "by-name", "--json"))
    assert [v["version"] for v in shown["versions"]] == [1, 2]
    _cli(server, capsys, "experiments", "create", "by-name", "--variant", "1", "--variant", "2:3")
    experiments = json.loads(_cli(server, capsys, "experiments", "list", "--prompt", "by-name", "--json"))
    assert sorted(e["active"] for e in experiments) == [False, True]
    live = next(e for e in experiments if e["active"])
    assert [(v["version"], v["weight"]) for v in live["variants"]] == [(1, 1.0), (2, 3.0)]


@pytest.mark.parametrize("variant", ["x", "0", "1:0", "1:-2", "1:nan", "two:1"])
def test_cli_bad_variant_is_a_usage_error(server: Any, variant: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["experiments", "create", "p", "--variant", variant, "--base-url", server.url, "--api-key", API_KEY])
    assert info.value.code == 2
    assert "--variant" in capsys.readouterr().err


def test_cli_names_the_url_it_could_not_reach(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prompts", "list", "--base-url", "http://user:pw123456@127.0.0.1:9", "--api-key", API_KEY]) == 1
    err = capsys.readouterr().err
    assert "cannot reach the server at http://127.0.0.1:9" in err and "pw123456" not in err
