"""The PostgreSQL database under ``PgStore``: schema and its migrations, the connection pool, and the idempotency
records every aggregate shares. Needs the ``postgres`` extra (psycopg 3 and psycopg_pool).

Schema versions (README.md, "Storage: SQLite or PostgreSQL"): ``schema_version`` holds one row, the version the
database is at; ``MIGRATIONS`` lists the steps in order, and opening a database applies the ones it lacks, in one
transaction under an advisory lock, so two servers starting at once on an empty database migrate it once.
"""

from __future__ import annotations

import json
import time
from typing import Any

import psycopg
from psycopg.adapt import Dumper, Loader
from psycopg_pool import ConnectionPool

from ._storage import Idempotency, StoreError
from ._wire import EventBody

# the events table's columns insert_events fills, in its order (named: later steps add columns)
EVENT_COLUMNS = (
    "event_id, type, prompt_run_id, experiment_id, timestamp, external_user_id, label, source, metadata, thumbs_up,"
    " rating, engagement_score, received_at, trace_id, span_id"
)

# Version 1 is the schema of the first release (the same tables as SQLite's); each later step is appended, never
# edited, so a database of any earlier release upgrades in order.
MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
CREATE TABLE IF NOT EXISTS prompts (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS prompt_versions (
    prompt_id TEXT NOT NULL REFERENCES prompts(id), version INTEGER NOT NULL, template TEXT NOT NULL,
    inputs TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (prompt_id, version));
CREATE TABLE IF NOT EXISTS experiments (
    id TEXT PRIMARY KEY, prompt_id TEXT NOT NULL REFERENCES prompts(id), name TEXT, variants TEXT NOT NULL,
    is_default INTEGER NOT NULL, created_at DOUBLE PRECISION NOT NULL, ended_at DOUBLE PRECISION);
CREATE INDEX IF NOT EXISTS experiments_by_prompt ON experiments(prompt_id, ended_at);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, prompt_id TEXT NOT NULL, experiment_id TEXT NOT NULL, version INTEGER NOT NULL,
    variant TEXT NOT NULL, external_user_id TEXT, output TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL);
CREATE INDEX IF NOT EXISTS runs_by_experiment ON runs(experiment_id);
CREATE TABLE IF NOT EXISTS events (
    event_id TEXT PRIMARY KEY, type TEXT NOT NULL, prompt_run_id TEXT NOT NULL, experiment_id TEXT NOT NULL,
    timestamp TEXT NOT NULL, external_user_id TEXT, label TEXT, source TEXT, metadata TEXT,
    thumbs_up INTEGER, rating DOUBLE PRECISION, engagement_score DOUBLE PRECISION,
    received_at DOUBLE PRECISION NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_experiment ON events(experiment_id, type);
-- status 0 with no response: a run claimed by a server whose model is still running (any instance)
CREATE TABLE IF NOT EXISTS idempotency (
    scope TEXT NOT NULL, key TEXT NOT NULL, request_hash TEXT NOT NULL, status INTEGER NOT NULL,
    response BYTEA, created_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (scope, key));
CREATE TABLE IF NOT EXISTS batch_log (
    seq BIGSERIAL PRIMARY KEY, idempotency_key TEXT, events INTEGER NOT NULL, accepted INTEGER NOT NULL,
    duplicates INTEGER NOT NULL, rejected INTEGER NOT NULL, replayed INTEGER NOT NULL,
    received_at DOUBLE PRECISION NOT NULL);
""",
    ),
    (
        2,
        """
-- the results read (run id, variant, user) of one experiment's runs: answered from the index alone
CREATE INDEX IF NOT EXISTS runs_for_results ON runs(experiment_id) INCLUDE (id, variant, external_user_id);
""",
    ),
    (
        5,
        """
-- trace context (docs/protocol.md): the span an event was tracked in, to join it to the request behind it
ALTER TABLE events ADD COLUMN IF NOT EXISTS trace_id TEXT;
ALTER TABLE events ADD COLUMN IF NOT EXISTS span_id TEXT;
CREATE INDEX IF NOT EXISTS events_by_trace ON events(trace_id) WHERE trace_id IS NOT NULL;
""",
    ),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]
_MIGRATION_LOCK = 0x5053_4D49  # advisory lock id: "PSMI"


# PostgreSQL's text cannot hold NUL, which valid Unicode (and SQLite) allows in a name, a template, a label or an id.
# Texts go in and out through one reversible escape: NUL becomes _ESCAPE + "0" and _ESCAPE itself is doubled, so
# every other text (all of them in practice: _ESCAPE is a noncharacter) is stored exactly as given.
_ESCAPE = "\U0010ffff"


def _escape(text: str) -> str:
    if "\x00" not in text and _ESCAPE not in text:
        return text
    return text.replace(_ESCAPE, _ESCAPE * 2).replace("\x00", _ESCAPE + "0")


def _unescape(text: str) -> str:
    if _ESCAPE not in text:
        return text
    out: list[str] = []
    chars = iter(text)
    for char in chars:
        if char == _ESCAPE:
            following = next(chars, "")
            out.append("\x00" if following == "0" else _ESCAPE)
        else:
            out.append(char)
    return "".join(out)


class _TextDumper(Dumper):
    oid = psycopg.adapters.types["text"].oid

    def dump(self, obj: str) -> bytes:
        return _escape(obj).encode("utf-8")


class _TextLoader(Loader):
    def load(self, data: Any) -> str:
        return _unescape(bytes(data).decode("utf-8"))


def configure(conn: psycopg.Connection[Any]) -> None:
    """Every connection of the store passes texts through the NUL escape."""
    conn.adapters.register_dumper(str, _TextDumper)
    conn.adapters.register_loader("text", _TextLoader)


def open_pool(url: str, *, max_size: int = 16) -> ConnectionPool:
    """A pool of connections to ``url``, its schema migrated. Raises ConnectionError (one line, no password) when
    the database cannot be reached or migrated: one direct connection first, so an unreachable server fails at once
    rather than after the pool's retries."""
    try:
        with psycopg.connect(url) as conn:
            configure(conn)
            migrate(conn)
    except (psycopg.Error, RuntimeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConnectionError(f"cannot use the PostgreSQL database: {reason}") from None
    pool = ConnectionPool(
        url, min_size=1, max_size=max_size, open=False, name="promptstream-pg", timeout=30.0, configure=configure
    )
    pool.open(wait=True, timeout=30.0)
    return pool


def migrate(conn: psycopg.Connection[Any]) -> int:
    """Apply the migration steps ``conn``'s database lacks; returns the version it is at now."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        current = 0 if row is None else int(row[0])
        if current > SCHEMA_VERSION:
            raise RuntimeError(
                f"the database is at schema version {current}, newer than this server's {SCHEMA_VERSION}"
            )
        for version, script in MIGRATIONS:
            if version > current:
                conn.execute(script.encode())
        if row is None:
            conn.execute("INSERT INTO schema_version VALUES (%s)", (SCHEMA_VERSION,))
        else:
            conn.execute("UPDATE schema_version SET version = %s", (SCHEMA_VERSION,))
    return SCHEMA_VERSION


def replay(conn: psycopg.Connection[Any], idempotency: Idempotency | None) -> tuple[int, bytes] | None:
    """The stored (status, body) for a retried request (status 0: still running); 422 when its key was used for
    another body."""
    if idempotency is None:
        return None
    row = conn.execute(
        "SELECT request_hash, status, response FROM idempotency WHERE scope = %s AND key = %s", idempotency[:2]
    ).fetchone()
    if row is None:
        return None
    if row[0] != idempotency[2]:
        raise StoreError(
            422, "idempotency_key_reused", "this Idempotency-Key was already used with a different request body"
        )
    return int(row[1]), b"" if row[2] is None else bytes(row[2])


def lock_key(conn: psycopg.Connection[Any], idempotency: Idempotency) -> None:
    """Serialise the transactions of one (scope, key) across every connection and server instance."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"{idempotency[0]}\x1f{idempotency[1]}",))


def remember(conn: psycopg.Connection[Any], idempotency: Idempotency, response: bytes) -> None:
    """Keep the answer to an idempotent request (over its claim, if any), in the caller's transaction."""
    conn.execute(
        "INSERT INTO idempotency VALUES (%s, %s, %s, 200, %s, %s) ON CONFLICT (scope, key) DO UPDATE"
        " SET status = 200, response = EXCLUDED.response",
        (*idempotency, response, time.time()),
    )


def insert_events(conn: psycopg.Connection[Any], events: list[EventBody], now: float) -> set[str]:
    """One multi-row insert; returns the ids it stored (those not stored already)."""
    if not events:
        return set()
    marks = "(" + ",".join(["%s"] * len(EVENT_COLUMNS.split(","))) + ")"
    values: list[Any] = []
    for e in events:
        values += [
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
        ]
    rows = ",".join([marks] * len(events))
    query = f"INSERT INTO events ({EVENT_COLUMNS}) VALUES {rows} ON CONFLICT (event_id) DO NOTHING"
    return {row[0] for row in conn.execute((query + " RETURNING event_id").encode(), values).fetchall()}


def log_batch(
    conn: psycopg.Connection[Any],
    key: str | None,
    events: int,
    accepted: int,
    duplicates: int,
    rejected: int,
    *,
    replayed: bool = False,
) -> None:
    conn.execute(
        "INSERT INTO batch_log (idempotency_key, events, accepted, duplicates, rejected, replayed, received_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (key, events, accepted, duplicates, rejected, int(replayed), time.time()),
    )
