"""The SQL of runs. Callers hold the store's lock (and open the transaction when writing)."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from ._sqlite import select_in


def insert_run(
    db: sqlite3.Connection,
    project_id: str,
    run_id: str,
    prompt_id: str,
    experiment_id: str,
    version: int,
    variant: str,
    external_user_id: str | None,
    output: str,
) -> None:
    db.execute(
        "INSERT INTO runs (id, prompt_id, experiment_id, version, variant, external_user_id, output, created_at,"
        " project_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (run_id, prompt_id, experiment_id, version, variant, external_user_id, output, time.time(), project_id),
    )


def run_experiments(db: sqlite3.Connection, project_id: str, run_ids: set[str]) -> dict[str, str]:
    """The experiment of each of these runs that exists in the project (another project's run is unknown)."""
    query = "SELECT id, experiment_id FROM runs WHERE project_id = ? AND id IN ({marks})"
    return {row[0]: row[1] for row in select_in(db, query, list(run_ids), prefix=(project_id,))}


def runs_of(db: sqlite3.Connection, experiment_id: str) -> list[Any]:
    """(run_id, variant, external_user_id) of every run of an experiment."""
    return db.execute(
        "SELECT id, variant, external_user_id FROM runs WHERE experiment_id = ?", (experiment_id,)
    ).fetchall()
