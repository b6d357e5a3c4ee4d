"""The SQL of prompts and their versions. Callers hold the store's lock (and open the transaction when writing).

Every prompt belongs to one project; a prompt of another project is not found (404), exactly as one that does not
exist, so a key never learns what another project holds."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from ._experiments import live_experiment
from ._rules import prompt_not_found, prompt_view
from ._storage import StoreError
from ._templates import template_inputs


def insert_prompt(db: sqlite3.Connection, project_id: str, prompt_id: str, name: str, now: float) -> None:
    db.execute(
        "INSERT INTO prompts (id, name, created_at, project_id) VALUES (?, ?, ?, ?)", (prompt_id, name, now, project_id)
    )


def insert_version(db: sqlite3.Connection, prompt_id: str, version: int, template: str, now: float) -> None:
    db.execute(
        "INSERT INTO prompt_versions (prompt_id, version, template, inputs, created_at) VALUES (?, ?, ?, ?, ?)",
        (prompt_id, version, template, json.dumps(template_inputs(template)), now),
    )


def require_prompt(db: sqlite3.Connection, project_id: str, prompt_id: str) -> None:
    query = "SELECT 1 FROM prompts WHERE id = ? AND project_id = ?"
    if db.execute(query, (prompt_id, project_id)).fetchone() is None:
        raise prompt_not_found(prompt_id)


def latest_version(db: sqlite3.Connection, project_id: str, prompt_id: str) -> int:
    require_prompt(db, project_id, prompt_id)
    row = db.execute("SELECT MAX(version) FROM prompt_versions WHERE prompt_id = ?", (prompt_id,)).fetchone()
    return int(row[0])


def template_of(db: sqlite3.Connection, prompt_id: str, version: int) -> str:
    row = db.execute(
        "SELECT template FROM prompt_versions WHERE prompt_id = ? AND version = ?", (prompt_id, version)
    ).fetchone()
    if row is None:  # only a database written by another tool: experiments serve versions that exist
        raise StoreError(409, "experiment_misconfigured", f"the live experiment serves a missing version {version}")
    return str(row[0])


def prompt_ids(db: sqlite3.Connection, project_id: str) -> list[str]:
    query = "SELECT id FROM prompts WHERE project_id = ? ORDER BY created_at, id"
    return [row[0] for row in db.execute(query, (project_id,))]


def prompt(db: sqlite3.Connection, project_id: str, prompt_id: str) -> dict[str, Any]:
    """A prompt as the API shows it: its versions and its live experiment; 404 if the project has none."""
    query = "SELECT id, name, created_at FROM prompts WHERE id = ? AND project_id = ?"
    row = db.execute(query, (prompt_id, project_id)).fetchone()
    if row is None:
        raise prompt_not_found(prompt_id)
    versions = db.execute(
        "SELECT version, template, inputs FROM prompt_versions WHERE prompt_id = ? ORDER BY version", (prompt_id,)
    )
    return prompt_view(row, versions, live_experiment(db, prompt_id)["id"])
