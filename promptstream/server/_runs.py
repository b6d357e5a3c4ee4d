"""The SQL of runs. Callers hold the store's lock (and open the transaction when writing)."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from ._sqlite import select_in

# a run's answer carries these where the model reported them (None otherwise, as for an assignment)
METRIC_FIELDS = ("latency_ms", "input_tokens", "output_tokens", "cost_usd")


def insert_run(db: sqlite3.Connection, project_id: str, answer: dict[str, Any], external_user_id: str | None) -> None:
    """Store a run as its answer (``_rules.run_answer``, with the metrics the model reported) describes it."""
    db.execute(
        "INSERT INTO runs (id, prompt_id, experiment_id, version, variant, external_user_id, output, created_at,"
        " project_id, latency_ms, input_tokens, output_tokens, cost_usd)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            answer["run_id"],
            answer["prompt_id"],
            answer["experiment_id"],
            answer["version"],
            answer["variant_assigned"],
            external_user_id,
            answer["output"],
            time.time(),
            project_id,
            *(answer.get(name) for name in METRIC_FIELDS),
        ),
    )


def run_experiments(db: sqlite3.Connection, project_id: str, run_ids: set[str]) -> dict[str, str]:
    """The experiment of each of these runs that exists in the project (another project's run is unknown)."""
    query = "SELECT id, experiment_id FROM runs WHERE project_id = ? AND id IN ({marks})"
    return {row[0]: row[1] for row in select_in(db, query, list(run_ids), prefix=(project_id,))}


def prompt_name(db: sqlite3.Connection, prompt_id: str) -> str:
    """The prompt's name (a price may be configured for it)."""
    row = db.execute("SELECT name FROM prompts WHERE id = ?", (prompt_id,)).fetchone()
    return str(row[0]) if row is not None else ""
