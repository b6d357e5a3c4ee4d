"""The SQL of prompts and their versions. Callers hold the store's lock (and open the transaction when writing)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from ._experiments import live_experiment
from ._storage import StoreError
from ._templates import template_inputs


def insert_prompt(db: sqlite3.Connection, prompt_id: str, name: str, now: float) -> None:
    db.execute("INSERT INTO prompts VALUES (?, ?, ?)", (prompt_id, name, now))


def insert_version(db: sqlite3.Connection, prompt_id: str, version: int, template: str, now: float) -> None:
    db.execute(
        "INSERT INTO prompt_versions VALUES (?, ?, ?, ?, ?)",
        (prompt_id, version, template, json.dumps(template_inputs(template)), now),
    )


def require_prompt(db: sqlite3.Connection, prompt_id: str) -> None:
    if db.execute("SELECT 1 FROM prompts WHERE id = ?", (prompt_id,)).fetchone() is None:
        raise StoreError(404, "prompt_not_found", f"no prompt with id {prompt_id!r}")


def latest_version(db: sqlite3.Connection, prompt_id: str) -> int:
    require_prompt(db, prompt_id)
    row = db.execute("SELECT MAX(version) FROM prompt_versions WHERE prompt_id = ?", (prompt_id,)).fetchone()
    return int(row[0])


def template_of(db: sqlite3.Connection, prompt_id: str, version: int) -> str:
    row = db.execute(
        "SELECT template FROM prompt_versions WHERE prompt_id = ? AND version = ?", (prompt_id, version)
    ).fetchone()
    return str(row[0])


def prompt_ids(db: sqlite3.Connection) -> list[str]:
    return [row[0] for row in db.execute("SELECT id FROM prompts ORDER BY created_at")]


def prompt(db: sqlite3.Connection, prompt_id: str) -> dict[str, Any]:
    """A prompt as the API shows it: its versions and its live experiment; 404 if there is none."""
    row = db.execute("SELECT id, name, created_at FROM prompts WHERE id = ?", (prompt_id,)).fetchone()
    if row is None:
        raise StoreError(404, "prompt_not_found", f"no prompt with id {prompt_id!r}")
    versions = [
        {"version": v, "template": t, "inputs": json.loads(i)}
        for v, t, i in db.execute(
            "SELECT version, template, inputs FROM prompt_versions WHERE prompt_id = ? ORDER BY version",
            (prompt_id,),
        )
    ]
    return {
        "prompt_id": row[0],
        "name": row[1],
        "latest_version": versions[-1]["version"],
        "versions": versions,
        "experiment_id": live_experiment(db, prompt_id)["id"],
        "created_at": row[2],
    }
