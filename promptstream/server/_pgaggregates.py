"""The SQL of prompts and experiments on PostgreSQL (the SQLite store's is in _prompts.py and _experiments.py).
Callers pass the connection of their transaction."""

from __future__ import annotations

import json
import uuid
from typing import Any, NamedTuple

import psycopg

from . import _rules
from ._storage import StoreError
from ._templates import template_inputs


class LiveExperiment(NamedTuple):
    """What a run or an assignment needs to know of a prompt, read in one round trip."""

    experiment_id: str
    variants: str  # as stored: JSON
    latest: int  # the prompt's latest version, which a variant without a version serves
    latest_template: str
    prompt_name: str

    def template(self, conn: psycopg.Connection[Any], prompt_id: str, version: int) -> str:
        """The template of ``version``: the latest one is at hand, another costs one more round trip."""
        if version == self.latest:
            return self.latest_template
        row = conn.execute(
            "SELECT template FROM prompt_versions WHERE prompt_id = %s AND version = %s", (prompt_id, version)
        ).fetchone()
        if row is None:
            raise StoreError(409, "experiment_misconfigured", f"the live experiment serves a missing version {version}")
        return str(row[0])


# One statement instead of five (prompt, live experiment, latest version, its template, the name): on PostgreSQL
# each is a round trip, and they were most of a run's latency under load (docs/scaling.md).
_LIVE_EXPERIMENT = """
SELECT e.id, e.variants, v.version, v.template, p.name
FROM prompts p
JOIN LATERAL (SELECT id, variants FROM experiments WHERE prompt_id = p.id AND ended_at IS NULL
              ORDER BY created_at DESC LIMIT 1 {lock}) e ON TRUE
JOIN LATERAL (SELECT version, template FROM prompt_versions WHERE prompt_id = p.id
              ORDER BY version DESC LIMIT 1) v ON TRUE
WHERE p.id = %s AND p.project_id = %s
"""


def live_experiment(
    conn: psycopg.Connection[Any], project_id: str, prompt_id: str, *, share_lock: bool = False
) -> LiveExperiment:
    """The prompt's live experiment and its latest version; ``share_lock`` locks the experiment's row (``FOR
    SHARE``) until the transaction ends, so it is not ended meanwhile. A prompt of another project is a 404, as a
    missing one."""
    sql = _LIVE_EXPERIMENT.format(lock="FOR SHARE" if share_lock else "")
    row = conn.execute(sql.encode(), (prompt_id, project_id)).fetchone()
    if row is None:
        require_prompt(conn, project_id, prompt_id)
        raise StoreError(409, "experiment_misconfigured", "the prompt has no live experiment")
    return LiveExperiment(str(row[0]), str(row[1]), int(row[2]), str(row[3]), str(row[4]))


def insert_version(conn: psycopg.Connection[Any], prompt_id: str, version: int, template: str, now: float) -> None:
    conn.execute(
        "INSERT INTO prompt_versions (prompt_id, version, template, inputs, created_at) VALUES (%s, %s, %s, %s, %s)",
        (prompt_id, version, template, json.dumps(template_inputs(template)), now),
    )


def insert_experiment(
    conn: psycopg.Connection[Any],
    project_id: str,
    experiment_id: str,
    prompt_id: str,
    name: str | None,
    variants: list[dict[str, Any]],
    *,
    now: float,
    is_default: bool = False,
) -> None:
    conn.execute(
        "INSERT INTO experiments (id, prompt_id, name, variants, is_default, created_at, ended_at, project_id)"
        " VALUES (%s, %s, %s, %s, %s, %s, NULL, %s)",
        (experiment_id, prompt_id, name, json.dumps(variants), int(is_default), now, project_id),
    )


def start_default_experiment(conn: psycopg.Connection[Any], project_id: str, prompt_id: str, now: float) -> None:
    insert_experiment(
        conn,
        project_id,
        str(uuid.uuid4()),
        prompt_id,
        _rules.DEFAULT_EXPERIMENT_NAME,
        _rules.DEFAULT_VARIANTS,
        now=now,
        is_default=True,
    )


def require_prompt(conn: psycopg.Connection[Any], project_id: str, prompt_id: str, *, lock: bool = False) -> None:
    query = "SELECT 1 FROM prompts WHERE id = %s AND project_id = %s" + (" FOR UPDATE" if lock else "")
    if conn.execute(query.encode(), (prompt_id, project_id)).fetchone() is None:
        raise _rules.prompt_not_found(prompt_id)


def latest_version(conn: psycopg.Connection[Any], project_id: str, prompt_id: str, *, lock: bool = False) -> int:
    require_prompt(conn, project_id, prompt_id, lock=lock)
    row = conn.execute("SELECT MAX(version) FROM prompt_versions WHERE prompt_id = %s", (prompt_id,)).fetchone()
    assert row is not None
    return int(row[0])


def prompt(conn: psycopg.Connection[Any], project_id: str, prompt_id: str) -> dict[str, Any]:
    query = "SELECT id, name, created_at FROM prompts WHERE id = %s AND project_id = %s"
    row = conn.execute(query, (prompt_id, project_id)).fetchone()
    if row is None:
        raise _rules.prompt_not_found(prompt_id)
    versions = conn.execute(
        "SELECT version, template, inputs FROM prompt_versions WHERE prompt_id = %s ORDER BY version", (prompt_id,)
    ).fetchall()
    live = conn.execute(
        "SELECT id FROM experiments WHERE prompt_id = %s AND ended_at IS NULL ORDER BY created_at DESC LIMIT 1",
        (prompt_id,),
    ).fetchone()
    assert live is not None
    return _rules.prompt_view(row, versions, live[0])


def experiment(conn: psycopg.Connection[Any], project_id: str, experiment_id: str) -> dict[str, Any]:
    row = conn.execute(
        f"SELECT {_rules.EXPERIMENT_COLUMNS} FROM experiments WHERE id = %s AND project_id = %s".encode(),
        (experiment_id, project_id),
    ).fetchone()
    if row is None:
        raise _rules.experiment_not_found(experiment_id)
    return _rules.experiment_view(row)
