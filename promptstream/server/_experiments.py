"""The SQL of experiments: one live experiment per prompt, its variants and their weights. Callers hold the store's
lock (and open the transaction when writing)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from ._assignment import Variant
from ._storage import StoreError

DEFAULT_VARIANTS = [{"version": None, "weight": 1.0}]  # the default experiment serves the latest version


def insert_experiment(
    db: sqlite3.Connection,
    experiment_id: str,
    prompt_id: str,
    name: str | None,
    variants: list[dict[str, Any]],
    *,
    is_default: bool,
    now: float,
) -> None:
    db.execute(
        "INSERT INTO experiments VALUES (?, ?, ?, ?, ?, ?, NULL)",
        (experiment_id, prompt_id, name, json.dumps(variants), int(is_default), now),
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
    return {"id": row[0], "variants": row[1]}


def variants_of(stored: str) -> list[Variant]:
    return [Variant(v["version"], v["weight"]) for v in json.loads(stored)]


def experiment(db: sqlite3.Connection, experiment_id: str) -> dict[str, Any]:
    """An experiment as the API shows it; 404 if there is none."""
    row = db.execute(
        "SELECT id, prompt_id, name, variants, is_default, created_at, ended_at FROM experiments WHERE id = ?",
        (experiment_id,),
    ).fetchone()
    if row is None:
        raise StoreError(404, "experiment_not_found", f"no experiment with id {experiment_id!r}")
    return {
        "experiment_id": row[0],
        "prompt_id": row[1],
        "name": row[2],
        "variants": json.loads(row[3]),
        "is_default": bool(row[4]),
        "created_at": row[5],
        "ended_at": row[6],
        "active": row[6] is None,
    }


def experiment_ids(db: sqlite3.Connection, prompt_id: str | None) -> list[str]:
    query = "SELECT id FROM experiments"
    args: tuple[str, ...] = ()
    if prompt_id is not None:
        query += " WHERE prompt_id = ?"
        args = (prompt_id,)
    return [row[0] for row in db.execute(query + " ORDER BY created_at", args)]
