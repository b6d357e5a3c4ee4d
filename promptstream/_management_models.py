"""Wire types of the protocol's management endpoints (prompts, versions, experiments) as msgspec Structs, decoded
leniently like every response (unknown fields are ignored)."""

from __future__ import annotations

import msgspec

__all__ = ["Experiment", "ExperimentList", "Prompt", "PromptList", "PromptVersion", "Variant"]


class PromptVersion(msgspec.Struct, frozen=True, kw_only=True):
    """One version of a prompt's template.

    Example:
        ```python
        for version in client.prompts.get("greeting").versions:
            print(version.version, version.inputs, version.template)
        ```
    """

    version: int
    """1 for the first template, then 2, 3, ..."""
    template: str = ""
    """The template text, with ``{{placeholders}}``."""
    inputs: list[str] = msgspec.field(default_factory=list)
    """The placeholders the template needs, in order."""
    prompt_id: str | None = None
    """Set when the version was just created (``prompts.add_version``)."""


class Prompt(msgspec.Struct, frozen=True, kw_only=True):
    """A prompt with its versions, from ``client.prompts``.

    Example:
        ```python
        prompt = client.prompts.get("greeting")  # by id or by name
        print(prompt.prompt_id, prompt.latest_version)
        ```
    """

    prompt_id: str
    """The id ``run_prompt`` takes."""
    name: str
    """The unique, human name given at creation."""
    latest_version: int
    """The newest version's number."""
    experiment_id: str
    """The prompt's live experiment."""
    versions: list[PromptVersion] = msgspec.field(default_factory=list)
    """Every version, oldest first."""
    created_at: float | None = None
    """Unix time of creation."""


class Variant(msgspec.Struct, frozen=True, kw_only=True):
    """A variant of an experiment: a prompt version and its traffic weight (None: the latest version).

    Example:
        ```python
        client.experiments.create(prompt.prompt_id, [Variant(version=1), Variant(version=2, weight=3.0)])
        ```
    """

    version: int | None
    """The prompt version served; None for a default experiment, which serves the latest version."""
    weight: float = 1.0
    """Relative share of traffic."""


class Experiment(msgspec.Struct, frozen=True, kw_only=True):
    """An experiment on a prompt's versions, from ``client.experiments``.

    Example:
        ```python
        experiment = client.experiments.create(prompt.prompt_id, variants=[(1, 1.0), (2, 1.0)], name="tone")
        print(experiment.experiment_id, experiment.active)
        ```
    """

    experiment_id: str
    """Its id: ``get_experiment_results`` takes it."""
    prompt_id: str
    """The prompt it runs."""
    variants: list[Variant]
    """The versions served and their weights; the first is the control."""
    name: str | None = None
    """Its optional name."""
    active: bool = True
    """True while it is the prompt's live experiment."""
    is_default: bool = False
    """True for the experiment every prompt starts with (the latest version, alone)."""
    created_at: float | None = None
    """Unix time of creation."""
    ended_at: float | None = None
    """Unix time it ended (a newer experiment started, or ``client.experiments.end``); None while live."""


class PromptList(msgspec.Struct, frozen=True, kw_only=True):
    prompts: list[Prompt]


class ExperimentList(msgspec.Struct, frozen=True, kw_only=True):
    experiments: list[Experiment]
