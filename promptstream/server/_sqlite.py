"""The SQLite database under ``Store``: schema and its migrations, connection (an owner-only file in WAL mode),
transactions, and the idempotency records every aggregate shares. The SQL of each aggregate lives in its own module.

Schema versions (README.md, "Storage: SQLite or PostgreSQL"): ``schema_version`` holds one row, the version the
database is at; ``MIGRATIONS`` lists the steps in order, and opening a database applies the ones it lacks in one
write transaction. A database of the first release has no ``schema_version``: it is at version 0, and step 1 (its own
schema, all ``IF NOT EXISTS``) finds its tables already there.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ._storage import Idempotency, StoreError

SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS prompts (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS prompt_versions (
    prompt_id TEXT NOT NULL REFERENCES prompts(id), version INTEGER NOT NULL, template TEXT NOT NULL,
    inputs TEXT NOT NULL, created_at REAL NOT NULL, PRIMARY KEY (prompt_id, version));
-- variants: JSON list of {"version": int|null, "weight": float}; null means "the prompt's latest version"
CREATE TABLE IF NOT EXISTS experiments (
    id TEXT PRIMARY KEY, prompt_id TEXT NOT NULL REFERENCES prompts(id), name TEXT, variants TEXT NOT NULL,
    is_default INTEGER NOT NULL, created_at REAL NOT NULL, ended_at REAL);
CREATE INDEX IF NOT EXISTS experiments_by_prompt ON experiments(prompt_id, ended_at);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, prompt_id TEXT NOT NULL, experiment_id TEXT NOT NULL, version INTEGER NOT NULL,
    variant TEXT NOT NULL, external_user_id TEXT, output TEXT NOT NULL, created_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS runs_by_experiment ON runs(experiment_id);
CREATE TABLE IF NOT EXISTS events (
    event_id TEXT PRIMARY KEY, type TEXT NOT NULL, prompt_run_id TEXT NOT NULL, experiment_id TEXT NOT NULL,
    timestamp TEXT NOT NULL, external_user_id TEXT, label TEXT, source TEXT, metadata TEXT,
    thumbs_up INTEGER, rating REAL, engagement_score REAL, received_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_experiment ON events(experiment_id, type);
-- One row per idempotent request: the first answer is replayed for a retry with the same key and body.
CREATE TABLE IF NOT EXISTS idempotency (
    scope TEXT NOT NULL, key TEXT NOT NULL, request_hash TEXT NOT NULL, status INTEGER NOT NULL,
    response BLOB NOT NULL, created_at REAL NOT NULL, PRIMARY KEY (scope, key));
-- Every batch request the server processed (replays included), for operators and for tests of the SDK.
CREATE TABLE IF NOT EXISTS batch_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, idempotency_key TEXT, events INTEGER NOT NULL, accepted INTEGER NOT NULL,
    duplicates INTEGER NOT NULL, rejected INTEGER NOT NULL, replayed INTEGER NOT NULL, received_at REAL NOT NULL);
"""

# Appended, never edited: a database of any earlier release upgrades through every later step in order.
MIGRATIONS: list[tuple[int, str]] = [
    (1, SCHEMA_V1),
    # the results read (run id, variant, user) of one experiment's runs: answered from the index alone
    (2, "CREATE INDEX IF NOT EXISTS runs_for_results ON runs(experiment_id, variant, external_user_id, id);"),
    # trace context (docs/protocol.md): the span an event was tracked in, to join it to the request behind it
    (
        5,
        """
ALTER TABLE events ADD COLUMN trace_id TEXT;
ALTER TABLE events ADD COLUMN span_id TEXT;
CREATE INDEX IF NOT EXISTS events_by_trace ON events(trace_id) WHERE trace_id IS NOT NULL;
""",
    ),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]

_SQL_CHUNK = 500  # stays below SQLite's host-parameter limit on old builds (999)


def connect(path: str) -> sqlite3.Connection:
    """The database at ``path`` (":memory:" for a throwaway one) with its schema, shareable between threads (the
    caller serialises access)."""
    if path != ":memory:":
        _create_owner_only(Path(path))
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    if path != ":memory:":
        db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=5000")
    migrate(db)
    return db


def migrate(db: sqlite3.Connection) -> int:
    """Apply the migration steps the database lacks, in one write transaction (a second process opening the same
    file waits, then finds it done); returns the version it is at now. A database newer than this code is refused
    rather than written with an older schema's assumptions."""
    with Transaction(db):
        db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = db.execute("SELECT version FROM schema_version").fetchone()
        current = 0 if row is None else int(row[0])
        if current > SCHEMA_VERSION:
            raise RuntimeError(
                f"the database is at schema version {current}, newer than this server's {SCHEMA_VERSION}"
            )
        for version, script in MIGRATIONS:
            if version > current:
                for statement in _statements(script):
                    db.execute(statement)
        db.execute("DELETE FROM schema_version")
        db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
    return SCHEMA_VERSION


def _statements(script: str) -> Iterator[str]:
    """The statements of a script one by one (``executescript`` would commit the caller's transaction)."""
    pending = ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending
            pending = ""
    if pending.strip():
        yield pending


def _create_owner_only(path: Path) -> None:
    """Create the database file 0600 (and its directory 0700) before SQLite opens it: SQLite gives the -wal and -shm
    files the mode of the database, so all three stay owner-only. A file or directory that already exists keeps its
    mode: it is not ours to change."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


class Transaction:
    """``with Transaction(db):`` runs the block in one write transaction, rolled back if it raises."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")


def replay(db: sqlite3.Connection, idempotency: Idempotency | None) -> tuple[int, bytes] | None:
    """The stored (status, body) for a retried request; 422 when its key was used for another body."""
    if idempotency is None:
        return None
    row = db.execute(
        "SELECT request_hash, status, response FROM idempotency WHERE scope = ? AND key = ?", idempotency[:2]
    ).fetchone()
    if row is None:
        return None
    if row[0] != idempotency[2]:
        raise StoreError(
            422, "idempotency_key_reused", "this Idempotency-Key was already used with a different request body"
        )
    return int(row[1]), bytes(row[2])


def remember(db: sqlite3.Connection, idempotency: Idempotency, response: bytes) -> None:
    """Keep the answer to an idempotent request, in the caller's transaction."""
    db.execute("INSERT INTO idempotency VALUES (?, ?, ?, 200, ?, ?)", (*idempotency, response, time.time()))


def select_in(db: sqlite3.Connection, query: str, ids: Sequence[str]) -> Iterator[Any]:
    """Rows of ``query`` (with one ``IN ({marks})``) for every id, in chunks SQLite accepts."""
    for start in range(0, len(ids), _SQL_CHUNK):
        chunk = ids[start : start + _SQL_CHUNK]
        yield from db.execute(query.format(marks=",".join("?" * len(chunk))), chunk)
