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
from ._storage import StoreError

__all__ = ["assign"]


def assign(
    conn: psycopg.Connection[Any], rng: random.Random, project_id: str, prompt_id: str, external_user_id: str | None
) -> dict[str, Any]:
    """Choose the variant and record the run without output in the project; returns the response body. A prompt of
    another project is a 404, as a missing one."""
    found_prompt = conn.execute("SELECT 1 FROM prompts WHERE id = %s AND project_id = %s", (prompt_id, project_id))
    if found_prompt.fetchone() is None:
        raise _rules.prompt_not_found(prompt_id)
    row = conn.execute(
        "SELECT id, variants FROM experiments WHERE prompt_id = %s AND ended_at IS NULL"
        " ORDER BY created_at DESC LIMIT 1 FOR SHARE",
        (prompt_id,),
    ).fetchone()
    if row is None:
        raise StoreError(409, "experiment_misconfigured", "the prompt has no live experiment")
    experiment_id = str(row[0])
    chosen = _rules.choose_variant(experiment_id, row[1], external_user_id, rng)
    version = chosen.version
    if version is None:
        latest = conn.execute("SELECT MAX(version) FROM prompt_versions WHERE prompt_id = %s", (prompt_id,)).fetchone()
        version = int(latest[0])  # type: ignore[index]
    found = conn.execute(
        "SELECT template FROM prompt_versions WHERE prompt_id = %s AND version = %s", (prompt_id, version)
    ).fetchone()
    if found is None:
        raise StoreError(409, "experiment_misconfigured", f"the live experiment serves a missing version {version}")
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
    return assignment_body(run_id, experiment_id, prompt_id, version, str(found[0]), external_user_id)
