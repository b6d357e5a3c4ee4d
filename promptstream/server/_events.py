"""The SQL of events and of the batch log. Callers hold the store's lock (and open the transaction when writing)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from typing import Any

from ._rules import EVENT_COLUMNS, event_row
from ._sqlite import select_in
from ._wire import EventBody


def existing_events(db: sqlite3.Connection, project_id: str, event_ids: set[str]) -> set[str]:
    """Which of these event ids the project has stored already (dedup is per project)."""
    query = "SELECT event_id FROM events WHERE project_id = ? AND event_id IN ({marks})"
    return {row[0] for row in select_in(db, query, list(event_ids), prefix=(project_id,))}


def insert_events(db: sqlite3.Connection, project_id: str, events: Iterable[EventBody], now: float) -> None:
    marks = ", ".join("?" * (EVENT_COLUMNS.count(",") + 1))
    db.executemany(
        f"INSERT INTO events ({EVENT_COLUMNS}) VALUES ({marks})", [event_row(project_id, e, now) for e in events]
    )


def event_ids(db: sqlite3.Connection, project_id: str | None) -> list[str]:
    if project_id is None:
        return [row[0] for row in db.execute("SELECT event_id FROM events ORDER BY event_id")]
    query = "SELECT event_id FROM events WHERE project_id = ? ORDER BY event_id"
    return [row[0] for row in db.execute(query, (project_id,))]


def log_batch(
    db: sqlite3.Connection,
    project_id: str,
    key: str | None,
    events: int,
    accepted: int,
    duplicates: int,
    rejected: int,
    *,
    replayed: bool = False,
) -> None:
    db.execute(
        "INSERT INTO batch_log (idempotency_key, events, accepted, duplicates, rejected, replayed, received_at,"
        " project_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (key, events, accepted, duplicates, rejected, int(replayed), time.time(), project_id),
    )


def batch_log(db: sqlite3.Connection) -> list[dict[str, Any]]:
    cursor = db.execute("SELECT * FROM batch_log ORDER BY seq")
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]
