"""``promptstream experiments results`` (read an experiment's results and the server's decision) and
``promptstream experiments plan`` (how many users an experiment needs; no server involved)."""

from __future__ import annotations

import argparse
import json
import sys

import msgspec

from .._errors import InvalidArgumentError
from .._planning import plan_sample_size
from .._results_export import results_csv
from ._admin import connected_client
from ._common import CommandError
from ._render import render_results

__all__ = ["add_commands", "cmd_experiments_plan", "cmd_experiments_results"]


def add_commands(experiment_commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Register ``results`` and ``plan``; returns the ``results`` parser (it takes the connection options)."""
    results = experiment_commands.add_parser(
        "results", help="per-variant results, always-valid intervals and the server's decision"
    )
    results.add_argument("experiment_id")
    results.add_argument(
        "--format",
        choices=("table", "json", "csv"),
        default=None,
        help="table (default), json (the results as the server sent them) or csv (one row per variant and metric)",
    )
    results.add_argument("--json", action="store_true", help="the same as --format json")
    results.set_defaults(handler=cmd_experiments_results)
    plan = experiment_commands.add_parser("plan", help="users per variant needed to detect an effect")
    plan.add_argument("--baseline", type=float, required=True, help="the control's rate, e.g. 0.10 for 10%%")
    plan.add_argument("--mde", type=float, required=True, help="minimum detectable effect: absolute (0.02 = 2 points)")
    plan.add_argument("--relative", action="store_true", help="read --mde as relative (0.2 = +20%%)")
    plan.add_argument("--alpha", type=float, default=0.05, help="false-positive rate (default 0.05)")
    plan.add_argument("--power", type=float, default=0.8, help="chance to detect the effect (default 0.8)")
    plan.add_argument("--variants", type=int, default=2, help="variants including the control (default 2)")
    plan.add_argument("--json", action="store_true", help="the plan as JSON")
    plan.set_defaults(handler=cmd_experiments_plan)
    return results


def cmd_experiments_results(args: argparse.Namespace) -> int:
    with connected_client(args) as client:
        results = client.get_experiment_results(args.experiment_id)
    output_format = args.format or ("json" if args.json else "table")
    if args.json and output_format != "json":
        raise CommandError(f"--json and --format {output_format} disagree: give one")
    if output_format == "json":
        print(json.dumps(msgspec.to_builtins(results), indent=2))
    elif output_format == "csv":
        sys.stdout.write(results_csv(results))
    else:
        print(render_results(results))
    return 0


def cmd_experiments_plan(args: argparse.Namespace) -> int:
    try:
        plan = plan_sample_size(
            args.baseline,
            args.mde,
            relative=args.relative,
            alpha=args.alpha,
            power=args.power,
            variants=args.variants,
        )
    except InvalidArgumentError as exc:
        raise CommandError(str(exc)) from None
    if args.json:
        print(json.dumps(msgspec.to_builtins(plan), indent=2))
        return 0
    print(
        f"baseline {plan.baseline_rate:.2%} -> target {plan.target_rate:.2%}"
        f" (alpha {plan.alpha:g}, power {plan.power:.0%}, {plan.variants} variants)\n"
        f"peeking-safe (read the results whenever you like): {plan.users_per_variant:,} users per variant,"
        f" {plan.total_users:,} in all\n"
        f"fixed horizon (read once, at exactly this size): {plan.fixed_horizon_users_per_variant:,} users per variant"
    )
    return 0
