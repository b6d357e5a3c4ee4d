"""The SQL of experiments: one live experiment per prompt, its variants and their weights. Callers hold the store's
lock (and open the transaction when writing). An experiment of another project is not found (404)."""

from __future__ import annotations

import json
import sqlite3
import uuid
from typing import Any

from ._rules import (
    DEFAULT_EXPERIMENT_NAME,
    DEFAULT_VARIANTS,
    EXPERIMENT_COLUMNS,
    experiment_not_found,
    experiment_view,
)
from ._storage import StoreError


def insert_experiment(
    db: sqlite3.Connection,
    project_id: str,
    experiment_id: str,
    prompt_id: str,
    name: str | None,
    variants: list[dict[str, Any]],
    *,
    is_default: bool,
    now: float,
) -> None:
    db.execute(
        "INSERT INTO experiments (id, prompt_id, name, variants, is_default, created_at, ended_at, project_id)"
        " VALUES (?, ?, ?, ?, ?, ?, NULL, ?)",
        (experiment_id, prompt_id, name, json.dumps(variants), int(is_default), now, project_id),
    )


def start_default_experiment(db: sqlite3.Connection, project_id: str, prompt_id: str, now: float) -> None:
    """The prompt's default experiment: its latest version, for everyone (_rules.DEFAULT_VARIANTS)."""
    insert_experiment(
        db,
        project_id,
        str(uuid.uuid4()),
        prompt_id,
        DEFAULT_EXPERIMENT_NAME,
        DEFAULT_VARIANTS,
        is_default=True,
        now=now,
    )


def end_live_experiment(db: sqlite3.Connection, prompt_id: str, now: float) -> None:
    """A prompt has one live experiment: creating one ends the previous one, so new runs go to the new one."""
    db.execute("UPDATE experiments SET ended_at = ? WHERE prompt_id = ? AND ended_at IS NULL", (now, prompt_id))


def end_experiment(db: sqlite3.Connection, experiment_id: str, now: float) -> bool:
    """End one experiment if it is still live; False if it had already ended (ending is idempotent)."""
    query = "UPDATE experiments SET ended_at = ? WHERE id = ? AND ended_at IS NULL"
    return db.execute(query, (now, experiment_id)).rowcount > 0


def live_experiment(db: sqlite3.Connection, prompt_id: str) -> dict[str, Any]:
    """The prompt's live experiment: its id and its variants (as stored, a JSON list)."""
    row = db.execute(
        "SELECT id, variants FROM experiments WHERE prompt_id = ? AND ended_at IS NULL"
        " ORDER BY created_at DESC LIMIT 1",
        (prompt_id,),
    ).fetchone()
    if row is None:  # only a database written by another tool: every prompt keeps a live experiment
        raise StoreError(409, "experiment_misconfigured", "the prompt has no live experiment")
    return {"id": row[0], "variants": row[1]}


def experiment(db: sqlite3.Connection, project_id: str, experiment_id: str) -> dict[str, Any]:
    """An experiment of the project as the API shows it; 404 if the project has none with this id."""
    row = db.execute(
        f"SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE id = ? AND project_id = ?", (experiment_id, project_id)
    ).fetchone()
    if row is None:
        raise experiment_not_found(experiment_id)
    return experiment_view(row)


def experiment_ids(db: sqlite3.Connection, project_id: str, prompt_id: str | None) -> list[str]:
    query = "SELECT id FROM experiments WHERE project_id = ?"
    args: tuple[str, ...] = (project_id,)
    if prompt_id is not None:
        query += " AND prompt_id = ?"
        args += (prompt_id,)
    return [row[0] for row in db.execute(query + " ORDER BY created_at, id", args)]
