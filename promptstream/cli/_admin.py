"""``promptstream prompts …`` and ``promptstream experiments …``: the protocol's admin endpoints from a shell."""

from __future__ import annotations

import argparse
import json
from typing import Any

import msgspec

from .._models import ExperimentResults
from ._common import CommandError, admin_api, path_part
from ._render import render_results


def _print_prompt(prompt: dict[str, Any]) -> None:
    print(f"{prompt['prompt_id']}  {prompt['name']}  latest version {prompt['latest_version']}")


def cmd_prompts_create(args: argparse.Namespace) -> int:
    prompt = admin_api(args).post("/v1/prompts", {"name": args.name, "template": args.template})
    _print_prompt(prompt)
    print(f"default experiment {prompt['experiment_id']}")
    return 0


def cmd_prompts_list(args: argparse.Namespace) -> int:
    prompts = admin_api(args).get("/v1/prompts")["prompts"]
    for prompt in prompts:
        _print_prompt(prompt)
    if not prompts:
        print("no prompts yet: promptstream prompts create NAME TEMPLATE")
    return 0


def cmd_prompts_show(args: argparse.Namespace) -> int:
    prompt = admin_api(args).get(f"/v1/prompts/{path_part(args.prompt_id)}")
    _print_prompt(prompt)
    for version in prompt["versions"]:
        inputs = ", ".join(version["inputs"]) or "no inputs"
        print(f"  v{version['version']}  ({inputs})  {version['template']}")
    return 0


def cmd_prompts_add_version(args: argparse.Namespace) -> int:
    version = admin_api(args).post(f"/v1/prompts/{path_part(args.prompt_id)}/versions", {"template": args.template})
    print(f"{version['prompt_id']}  version {version['version']}  inputs: {', '.join(version['inputs']) or '-'}")
    return 0


def _variant(text: str) -> dict[str, Any]:
    version, _, weight = text.partition(":")
    try:
        return {"version": int(version), "weight": float(weight) if weight else 1.0}
    except ValueError:
        raise CommandError(f"--variant takes VERSION[:WEIGHT], e.g. 2:1, got {text!r}") from None


def _print_experiment(experiment: dict[str, Any]) -> None:
    variants = ", ".join(f"v{v['version']}:{v['weight']:g}" for v in experiment["variants"] if v["version"])
    state = "live" if experiment["active"] else "ended"
    print(
        f"{experiment['experiment_id']}  prompt {experiment['prompt_id']}  {state}  "
        f"{variants or 'latest version (default)'}" + (f"  {experiment['name']}" if experiment.get("name") else "")
    )


def cmd_experiments_create(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"prompt_id": args.prompt_id, "variants": [_variant(v) for v in args.variant]}
    if args.name:
        body["name"] = args.name
    _print_experiment(admin_api(args).post("/v1/experiments", body))
    return 0


def cmd_experiments_list(args: argparse.Namespace) -> int:
    query = f"?prompt_id={path_part(args.prompt_id)}" if args.prompt_id else ""
    experiments = admin_api(args).get(f"/v1/experiments{query}")["experiments"]
    for experiment in experiments:
        _print_experiment(experiment)
    if not experiments:
        print("no experiments")
    return 0


def cmd_experiments_results(args: argparse.Namespace) -> int:
    raw = admin_api(args).get(f"/v1/experiments/{path_part(args.experiment_id)}/results")
    if args.json:
        print(json.dumps(raw, indent=2))
        return 0
    print(render_results(msgspec.convert(raw, ExperimentResults)))
    return 0
