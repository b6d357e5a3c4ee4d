"""The SQL of runs. Callers hold the store's lock (and open the transaction when writing)."""

from __future__ import annotations

import sqlite3
import time

from ._sqlite import select_in

RunMetrics = tuple[float | None, int | None, int | None, float | None]  # latency_ms, input/output tokens, cost_usd


def insert_run(
    db: sqlite3.Connection,
    run_id: str,
    prompt_id: str,
    experiment_id: str,
    version: int,
    variant: str,
    external_user_id: str | None,
    output: str,
    metrics: RunMetrics,
) -> None:
    db.execute(
        "INSERT INTO runs (id, prompt_id, experiment_id, version, variant, external_user_id, output, created_at,"
        " latency_ms, input_tokens, output_tokens, cost_usd) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (run_id, prompt_id, experiment_id, version, variant, external_user_id, output, time.time(), *metrics),
    )


def run_experiments(db: sqlite3.Connection, run_ids: set[str]) -> dict[str, str]:
    """The experiment of each of these runs that exists."""
    return dict(select_in(db, "SELECT id, experiment_id FROM runs WHERE id IN ({marks})", list(run_ids)))


def prompt_name(db: sqlite3.Connection, prompt_id: str) -> str:
    """The prompt's name (a price may be configured for it)."""
    row = db.execute("SELECT name FROM prompts WHERE id = ?", (prompt_id,)).fetchone()
    return str(row[0]) if row is not None else ""
