"""``POST /v1/assignments`` on PostgreSQL: the twin of ``_assignments.assign`` (same rule, same response), in the
caller's transaction. The live experiment's row is locked (``FOR SHARE``) so an experiment ended concurrently is not
assigned into after its end."""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

import psycopg

from . import _rules
from ._assignments import NO_OUTPUT, assignment_body
from ._pgaggregates import live_experiment

__all__ = ["assign"]


def assign(
    conn: psycopg.Connection[Any], rng: random.Random, project_id: str, prompt_id: str, external_user_id: str | None
) -> dict[str, Any]:
    """Choose the variant and record the run without output in the project; returns the response body. A prompt of
    another project is a 404, as a missing one."""
    live = live_experiment(conn, project_id, prompt_id, share_lock=True)
    chosen = _rules.choose_variant(live.experiment_id, live.variants, external_user_id, rng)
    version = chosen.version if chosen.version is not None else live.latest
    template = live.template(conn, prompt_id, version)
    experiment_id = live.experiment_id
    run_id = str(uuid.uuid4())
    now = time.time()
    conn.execute(
        "INSERT INTO runs (id, prompt_id, experiment_id, version, variant, external_user_id, output, created_at,"
        " project_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (run_id, prompt_id, experiment_id, version, f"v{version}", external_user_id, NO_OUTPUT, now, project_id),
    )
    conn.execute(
        "INSERT INTO assignments (project_id, run_id, created_at) VALUES (%s, %s, %s)", (project_id, run_id, now)
    )
    return assignment_body(run_id, experiment_id, prompt_id, version, template, external_user_id)
