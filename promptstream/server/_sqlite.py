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

from ._rules import stored_answer
from ._storage import Idempotency

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

# Projects (README.md, "Projects and API keys"): every prompt, experiment, run, event and idempotency record belongs to
# one project; what an older release stored goes to the "default" project. Event dedup and Idempotency-Keys become
# per project, so those two tables are rebuilt with the project in their primary key (SQLite cannot alter one); the
# old per-key idempotency scope ("<key digest>:<endpoint>") becomes the endpoint alone.
SCHEMA_V3_PROJECTS = """
CREATE TABLE projects (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at REAL NOT NULL);
INSERT INTO projects VALUES ('default', 'default', (julianday('now') - 2440587.5) * 86400.0);
-- secret_hash: SHA-256 of the whole key, the only form in which a key is kept
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY, project_id TEXT NOT NULL REFERENCES projects(id), name TEXT NOT NULL, prefix TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE, created_at REAL NOT NULL, last_used_at REAL, revoked_at REAL);
CREATE INDEX api_keys_by_project ON api_keys(project_id, created_at);
ALTER TABLE prompts ADD COLUMN project_id TEXT NOT NULL DEFAULT 'default';
CREATE INDEX prompts_by_project ON prompts(project_id, created_at);
ALTER TABLE experiments ADD COLUMN project_id TEXT NOT NULL DEFAULT 'default';
CREATE INDEX experiments_by_project ON experiments(project_id, created_at);
ALTER TABLE runs ADD COLUMN project_id TEXT NOT NULL DEFAULT 'default';
ALTER TABLE batch_log ADD COLUMN project_id TEXT NOT NULL DEFAULT 'default';
CREATE TABLE events_v3 (
    event_id TEXT NOT NULL, type TEXT NOT NULL, prompt_run_id TEXT NOT NULL, experiment_id TEXT NOT NULL,
    timestamp TEXT NOT NULL, external_user_id TEXT, label TEXT, source TEXT, metadata TEXT,
    thumbs_up INTEGER, rating REAL, engagement_score REAL, received_at REAL NOT NULL,
    project_id TEXT NOT NULL DEFAULT 'default',
    PRIMARY KEY (project_id, event_id));
INSERT INTO events_v3 SELECT event_id, type, prompt_run_id, experiment_id, timestamp, external_user_id, label, source,
    metadata, thumbs_up, rating, engagement_score, received_at, 'default' FROM events;
DROP TABLE events;
ALTER TABLE events_v3 RENAME TO events;
CREATE INDEX events_by_experiment ON events(experiment_id, type);
-- the dashboard's recent events of one experiment, newest first
CREATE INDEX events_recent ON events(experiment_id, received_at);
CREATE TABLE idempotency_v3 (
    project_id TEXT NOT NULL, scope TEXT NOT NULL, key TEXT NOT NULL, request_hash TEXT NOT NULL,
    status INTEGER NOT NULL, response BLOB NOT NULL, created_at REAL NOT NULL, PRIMARY KEY (project_id, scope, key));
INSERT OR IGNORE INTO idempotency_v3 SELECT 'default',
    CASE WHEN substr(scope, 17, 1) = ':' AND substr(scope, 1, 16) NOT GLOB '*[^0-9a-f]*' THEN substr(scope, 18)
    ELSE scope END, key, request_hash, status, response, created_at FROM idempotency ORDER BY created_at;
DROP TABLE idempotency;
ALTER TABLE idempotency_v3 RENAME TO idempotency;
-- the reasons of rejected events, the newest few per project (kept bounded by _projects.keep_rejections)
CREATE TABLE rejections (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, project_id TEXT NOT NULL, event_id TEXT, reason TEXT NOT NULL,
    batch_index INTEGER NOT NULL, idempotency_key TEXT, received_at REAL NOT NULL);
CREATE INDEX rejections_by_project ON rejections(project_id, seq);
"""

# Appended, never edited: a database of any earlier release upgrades through every later step in order.
MIGRATIONS: list[tuple[int, str]] = [
    (1, SCHEMA_V1),
    # the results read (run id, variant, user) of one experiment's runs: answered from the index alone
    (2, "CREATE INDEX IF NOT EXISTS runs_for_results ON runs(experiment_id, variant, external_user_id, id);"),
    (3, SCHEMA_V3_PROJECTS),
    # run metrics (latency, tokens, cost), and the index the results rank an experiment's latencies per variant from
    # (the plans are in docs/experiments.md)
    (
        4,
        """
ALTER TABLE runs ADD COLUMN latency_ms REAL;
ALTER TABLE runs ADD COLUMN input_tokens INTEGER;
ALTER TABLE runs ADD COLUMN output_tokens INTEGER;
ALTER TABLE runs ADD COLUMN cost_usd REAL;
CREATE INDEX IF NOT EXISTS runs_by_latency ON runs(experiment_id, variant, latency_ms);
""",
    ),
    # trace context (docs/protocol.md): the span an event was tracked in, to join it to the request behind it
    (
        5,
        """
ALTER TABLE events ADD COLUMN trace_id TEXT;
ALTER TABLE events ADD COLUMN span_id TEXT;
CREATE INDEX IF NOT EXISTS events_by_trace ON events(trace_id) WHERE trace_id IS NOT NULL;
""",
    ),
    # assignments (POST /v1/assignments): the runs recorded without output, for the app to call its own model
    (
        6,
        "CREATE TABLE IF NOT EXISTS assignments (project_id TEXT NOT NULL, run_id TEXT NOT NULL,"
        " created_at REAL NOT NULL, PRIMARY KEY (project_id, run_id));",
    ),
    # the dashboard's accounts (_accounts.py): people who sign in, and their sessions (only a hash of each token)
    (
        7,
        """
CREATE TABLE IF NOT EXISTS dashboard_users (
    user_id TEXT PRIMARY KEY, username TEXT NOT NULL UNIQUE, password_hash TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS dashboard_sessions (
    token_hash TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES dashboard_users(user_id), csrf_token TEXT NOT NULL,
    project_id TEXT NOT NULL, created_at REAL NOT NULL, expires_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS dashboard_sessions_by_user ON dashboard_sessions(user_id);
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


def replay(db: sqlite3.Connection, project_id: str, idempotency: Idempotency | None) -> tuple[int, bytes] | None:
    """The stored (status, body) for a retried request; 422 when its key was used for another body."""
    if idempotency is None:
        return None
    row = db.execute(
        "SELECT request_hash, status, response FROM idempotency WHERE project_id = ? AND scope = ? AND key = ?",
        (project_id, *idempotency[:2]),
    ).fetchone()
    return stored_answer(row, idempotency[2])


def remember(db: sqlite3.Connection, project_id: str, idempotency: Idempotency, response: bytes) -> None:
    """Keep the answer to an idempotent request, in the caller's transaction."""
    db.execute(
        "INSERT INTO idempotency (project_id, scope, key, request_hash, status, response, created_at)"
        " VALUES (?, ?, ?, ?, 200, ?, ?)",
        (project_id, *idempotency, response, time.time()),
    )


def select_in(db: sqlite3.Connection, query: str, ids: Sequence[str], prefix: Sequence[Any] = ()) -> Iterator[Any]:
    """Rows of ``query`` (with one ``IN ({marks})``, after the ``prefix`` arguments) for every id, in chunks SQLite
    accepts."""
    for start in range(0, len(ids), _SQL_CHUNK):
        chunk = ids[start : start + _SQL_CHUNK]
        yield from db.execute(query.format(marks=",".join("?" * len(chunk))), (*prefix, *chunk))
