"""``promptstream prompts …`` and ``promptstream experiments …``: the client's typed management calls
(``client.prompts``, ``client.experiments``) from a shell. Every list command takes ``--json``."""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Iterator
from typing import Any

import msgspec

from .._client import PromptStreamClient
from .._config import redact_url
from .._errors import APIConnectionError
from .._management_models import Experiment, Prompt, Variant
from ._common import CommandError, api_key_or_fail

__all__ = ["connected_client", "parse_variant"]


@contextlib.contextmanager
def connected_client(args: argparse.Namespace) -> Iterator[PromptStreamClient]:
    # disabled: the CLI tracks nothing, so no agent, threads or spool are started for it
    client = PromptStreamClient(api_key_or_fail(args.api_key), base_url=args.base_url, disabled=True)
    try:
        yield client
    except APIConnectionError as exc:
        raise CommandError(f"cannot reach the server at {redact_url(client.base_url)}: {exc.message}") from None
    finally:
        client.close(timeout=0)


def _print_json(value: Any) -> None:
    print(json.dumps(msgspec.to_builtins(value), indent=2))


def _print_prompt(prompt: Prompt) -> None:
    print(f"{prompt.prompt_id}  {prompt.name}  latest version {prompt.latest_version}")


def parse_variant(text: str) -> Variant:
    """``--variant VERSION[:WEIGHT]``; an argparse type, so a bad one is a usage error (exit code 2)."""
    version, _, weight = text.partition(":")
    try:
        parsed = Variant(version=int(version), weight=float(weight) if weight else 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes VERSION[:WEIGHT], e.g. 2:1, got {text!r}") from None
    if parsed.version is None or parsed.version < 1 or not 0 < parsed.weight <= 1e6:
        raise argparse.ArgumentTypeError(f"takes VERSION >= 1 and 0 < WEIGHT <= 1e6, got {text!r}")
    return parsed


def cmd_prompts_create(args: argparse.Namespace) -> int:
    with connected_client(args) as client:
        prompt = client.prompts.create(args.name, args.template)
    _print_prompt(prompt)
    print(f"default experiment {prompt.experiment_id}")
    return 0


def cmd_prompts_list(args: argparse.Namespace) -> int:
    with connected_client(args) as client:
        prompts = client.prompts.list()
    if getattr(args, "json", False):
        _print_json(prompts)
        return 0
    for prompt in prompts:
        _print_prompt(prompt)
    if not prompts:
        print("no prompts yet: promptstream prompts create NAME TEMPLATE")
    return 0


def cmd_prompts_show(args: argparse.Namespace) -> int:
    with connected_client(args) as client:
        prompt = client.prompts.get(args.prompt_id)  # an id or a name
    if getattr(args, "json", False):
        _print_json(prompt)
        return 0
    _print_prompt(prompt)
    for version in prompt.versions:
        inputs = ", ".join(version.inputs) or "no inputs"
        print(f"  v{version.version}  ({inputs})  {version.template}")
    return 0


def cmd_prompts_add_version(args: argparse.Namespace) -> int:
    with connected_client(args) as client:
        prompt_id = client.prompts.get(args.prompt_id).prompt_id  # an id or a name
        version = client.prompts.add_version(prompt_id, args.template)
    print(f"{version.prompt_id or prompt_id}  version {version.version}  inputs: {', '.join(version.inputs) or '-'}")
    return 0


def _print_experiment(experiment: Experiment) -> None:
    variants = ", ".join(f"v{v.version}:{v.weight:g}" for v in experiment.variants if v.version)
    state = "live" if experiment.active else "ended"
    print(
        f"{experiment.experiment_id}  prompt {experiment.prompt_id}  {state}  "
        f"{variants or 'latest version (default)'}" + (f"  {experiment.name}" if experiment.name else "")
    )


def cmd_experiments_create(args: argparse.Namespace) -> int:
    with connected_client(args) as client:
        prompt_id = client.prompts.get(args.prompt_id).prompt_id  # an id or a name
        experiment = client.experiments.create(prompt_id, list(args.variant), name=args.name or None)
    _print_experiment(experiment)
    return 0


def cmd_experiments_end(args: argparse.Namespace) -> int:
    with connected_client(args) as client:
        experiment = client.experiments.end(args.experiment_id)
    if getattr(args, "json", False):
        _print_json(experiment)
    else:
        _print_experiment(experiment)
    return 0


def cmd_experiments_list(args: argparse.Namespace) -> int:
    with connected_client(args) as client:
        prompt_id = None if not args.prompt_id else client.prompts.get(args.prompt_id).prompt_id
        experiments = client.experiments.list(prompt_id)
    if getattr(args, "json", False):
        _print_json(experiments)
        return 0
    for experiment in experiments:
        _print_experiment(experiment)
    if not experiments:
        print("no experiments")
    return 0
