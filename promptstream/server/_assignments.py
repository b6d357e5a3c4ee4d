"""Assignment without a model (``POST /v1/assignments``, docs/protocol.md): the live experiment's sticky choice of a
variant for a user, recorded as a run without output, so events tracked against its run id are accepted and counted
in the experiment's results exactly as a ``run_prompt`` run's are. The app renders and calls its model itself.

The SQLite SQL lives here; ``_pgassignments.py`` is the PostgreSQL twin. The response body is built by one function
for both. Callers hold the store's lock and its transaction.
"""

from __future__ import annotations

import random
import sqlite3
import time
import uuid
from typing import Any

from . import _experiments, _prompts, _runs
from ._assignment import Variant, assign_bucket, pick_variant
from ._storage import StoreError

__all__ = ["NO_OUTPUT", "assign", "assignment_body", "choose"]

# runs.output is NOT NULL in every schema: an assignment's run stores "", and a row in `assignments` says it has
# no output (rather than an empty one), for operators and anything that lists runs.
NO_OUTPUT = ""


def choose(variants: list[Variant], experiment_id: str, external_user_id: str | None, rng: random.Random) -> Variant:
    """The variant that serves this user: the same rule as a run's (sticky per user, random without one)."""
    position = assign_bucket(experiment_id, external_user_id) if external_user_id is not None else rng.random()
    try:
        return pick_variant(variants, position)
    except ValueError as exc:  # only a database written by hand or by another tool holds such weights
        raise StoreError(409, "experiment_misconfigured", f"the live experiment cannot assign: {exc}") from None


def assignment_body(
    run_id: str, experiment_id: str, prompt_id: str, version: int, template: str, external_user_id: str | None
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "experiment_id": experiment_id,
        "variant_assigned": f"v{version}",
        "prompt_id": prompt_id,
        "version": version,
        "template": template,
        "external_user_id": external_user_id,
    }


def assign(db: sqlite3.Connection, rng: random.Random, prompt_id: str, external_user_id: str | None) -> dict[str, Any]:
    """Choose the variant and record the run without output; returns the response body."""
    _prompts.require_prompt(db, prompt_id)
    experiment = _experiments.live_experiment(db, prompt_id)
    chosen = choose(_experiments.variants_of(experiment["variants"]), experiment["id"], external_user_id, rng)
    version = chosen.version if chosen.version is not None else _prompts.latest_version(db, prompt_id)
    template = _prompts.template_of(db, prompt_id, version)
    run_id = str(uuid.uuid4())
    _runs.insert_run(db, run_id, prompt_id, experiment["id"], version, f"v{version}", external_user_id, NO_OUTPUT)
    db.execute("INSERT INTO assignments (run_id, created_at) VALUES (?, ?)", (run_id, time.time()))
    return assignment_body(run_id, experiment["id"], prompt_id, version, template, external_user_id)
