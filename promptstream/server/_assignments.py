"""Assignment without a model (``POST /v1/assignments``, docs/protocol.md): the live experiment's sticky choice of a
variant for a user, recorded as a run without output, so events tracked against its run id are accepted and counted
in the experiment's results exactly as a ``run_prompt`` run's are. The app renders and calls its model itself.

The SQLite SQL lives here; ``_pgassignments.py`` is the PostgreSQL twin. The choice is the runs' own
(``_rules.choose_variant``) and the response body is built by one function for both. Callers hold the store's lock
and its transaction.
"""

from __future__ import annotations

import random
import sqlite3
import time
import uuid
from typing import Any

from . import _experiments, _prompts, _rules, _runs

__all__ = ["NO_OUTPUT", "assign", "assignment_body"]

# runs.output is NOT NULL in every schema: an assignment's run stores "", and a row in `assignments` says it has
# no output (rather than an empty one), for operators and anything that lists runs.
NO_OUTPUT = ""


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


def assign(
    db: sqlite3.Connection, rng: random.Random, project_id: str, prompt_id: str, external_user_id: str | None
) -> dict[str, Any]:
    """Choose the variant and record the run without output in the project; returns the response body. A prompt of
    another project is a 404, as a missing one."""
    _prompts.require_prompt(db, project_id, prompt_id)
    experiment = _experiments.live_experiment(db, prompt_id)
    chosen = _rules.choose_variant(experiment["id"], experiment["variants"], external_user_id, rng)
    version = chosen.version if chosen.version is not None else _prompts.latest_version(db, project_id, prompt_id)
    template = _prompts.template_of(db, prompt_id, version)
    run_id = str(uuid.uuid4())
    answer = _rules.run_answer(run_id, experiment["id"], prompt_id, version, NO_OUTPUT)
    _runs.insert_run(db, project_id, answer, external_user_id)
    db.execute(
        "INSERT INTO assignments (project_id, run_id, created_at) VALUES (?, ?, ?)", (project_id, run_id, time.time())
    )
    return assignment_body(run_id, experiment["id"], prompt_id, version, template, external_user_id)
