"""The SQL of events and of the batch log. Callers hold the store's lock (and open the transaction when writing)."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterable
from typing import Any

from ._sqlite import select_in
from ._wire import EventBody


def existing_events(db: sqlite3.Connection, event_ids: set[str]) -> set[str]:
    """Which of these event ids are stored already (dedup)."""
    return {row[0] for row in select_in(db, "SELECT event_id FROM events WHERE event_id IN ({marks})", list(event_ids))}


def insert_events(db: sqlite3.Connection, events: Iterable[EventBody], now: float) -> None:
    db.executemany(
        "INSERT INTO events (event_id, type, prompt_run_id, experiment_id, timestamp, external_user_id, label, source,"
        " metadata, thumbs_up, rating, engagement_score, received_at, trace_id, span_id)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                e.event_id,
                e.type,
                e.prompt_run_id,
                e.experiment_id,
                e.timestamp,
                e.external_user_id,
                e.label,
                e.source,
                None if e.metadata is None else json.dumps(e.metadata),
                None if e.thumbs_up is None else int(e.thumbs_up),
                e.rating,
                e.engagement_score,
                now,
                e.trace_id,
                e.span_id,
            )
            for e in events
        ],
    )


OFFLINE_RUN_PREFIX = "offline:"
OFFLINE_EXPERIMENT_ID = "offline"


def is_offline_run(prompt_run_id: str, experiment_id: str) -> bool:
    """A client-made fallback run (docs/protocol.md, "Offline fallback runs"): ``offline:`` and a UUID, in the
    ``offline`` experiment. No experiment has that id, so its events are in no experiment's results."""
    if experiment_id != OFFLINE_EXPERIMENT_ID or not prompt_run_id.startswith(OFFLINE_RUN_PREFIX):
        return False
    try:
        uuid.UUID(prompt_run_id[len(OFFLINE_RUN_PREFIX) :])
    except ValueError:
        return False
    return True


def events_of(db: sqlite3.Connection, experiment_id: str) -> list[Any]:
    """(run_id, type, thumbs_up, rating, engagement_score, timestamp, event_id) of every event of an experiment."""
    return db.execute(
        "SELECT prompt_run_id, type, thumbs_up, rating, engagement_score, timestamp, event_id FROM events"
        " WHERE experiment_id = ?",
        (experiment_id,),
    ).fetchall()


def event_ids(db: sqlite3.Connection) -> list[str]:
    return [row[0] for row in db.execute("SELECT event_id FROM events ORDER BY event_id")]


def log_batch(
    db: sqlite3.Connection,
    key: str | None,
    events: int,
    accepted: int,
    duplicates: int,
    rejected: int,
    *,
    replayed: bool = False,
) -> None:
    db.execute(
        "INSERT INTO batch_log (idempotency_key, events, accepted, duplicates, rejected, replayed, received_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (key, events, accepted, duplicates, rejected, int(replayed), time.time()),
    )


def batch_log(db: sqlite3.Connection) -> list[dict[str, Any]]:
    cursor = db.execute("SELECT * FROM batch_log ORDER BY seq")
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]
