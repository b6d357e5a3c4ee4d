"""The PostgreSQL database under ``PgStore``: schema and its migrations, the connection pool, and the idempotency
records every aggregate shares. Needs the ``postgres`` extra (psycopg 3 and psycopg_pool).

Schema versions (README.md, "Storage: SQLite or PostgreSQL"): ``schema_version`` holds one row, the version the
database is at; ``MIGRATIONS`` lists the steps in order, and opening a database applies the ones it lacks, in one
transaction under an advisory lock, so two servers starting at once on an empty database migrate it once.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg.adapt import Dumper, Loader
from psycopg_pool import ConnectionPool, PoolTimeout

from ._rules import EVENT_COLUMNS, event_row, stored_answer
from ._storage import Idempotency, StoreError
from ._wire import EventBody

# A batch is COPYed into this per-connection staging table, then moved into events by one INSERT ... SELECT ... ON
# CONFLICT DO NOTHING: COPY parses rows in bulk, where one multi-row VALUES of 14,000 parameters was planned afresh
# for every batch size (docs/scaling.md has the figures). ON COMMIT DELETE ROWS empties it at each commit.
_STAGING = "promptstream_incoming_events"
_COPY_EVENTS = f"COPY {_STAGING} ({EVENT_COLUMNS}) FROM STDIN"
_MOVE_EVENTS = (
    f"INSERT INTO events ({EVENT_COLUMNS}) SELECT {EVENT_COLUMNS} FROM {_STAGING}"
    " ON CONFLICT (project_id, event_id) DO NOTHING RETURNING event_id"
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
        3,
        # Projects (README.md, "Projects and API keys"): what an older release stored goes to the "default" project;
        # event dedup and Idempotency-Keys become per project (the old per-key scope "<key digest>:<endpoint>"
        # becomes the endpoint alone). Every write names its project; the columns keep the default only as SQLite must.
        """
CREATE TABLE projects (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at DOUBLE PRECISION NOT NULL);
INSERT INTO projects VALUES ('default', 'default', extract(epoch FROM now()));
-- secret_hash: SHA-256 of the whole key, the only form in which a key is kept
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY, project_id TEXT NOT NULL REFERENCES projects(id), name TEXT NOT NULL, prefix TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE, created_at DOUBLE PRECISION NOT NULL, last_used_at DOUBLE PRECISION,
    revoked_at DOUBLE PRECISION);
CREATE INDEX api_keys_by_project ON api_keys(project_id, created_at);
ALTER TABLE prompts ADD COLUMN project_id TEXT NOT NULL DEFAULT 'default' REFERENCES projects(id);
CREATE INDEX prompts_by_project ON prompts(project_id, created_at);
ALTER TABLE experiments ADD COLUMN project_id TEXT NOT NULL DEFAULT 'default';
CREATE INDEX experiments_by_project ON experiments(project_id, created_at);
ALTER TABLE runs ADD COLUMN project_id TEXT NOT NULL DEFAULT 'default';
ALTER TABLE batch_log ADD COLUMN project_id TEXT NOT NULL DEFAULT 'default';
ALTER TABLE events ADD COLUMN project_id TEXT NOT NULL DEFAULT 'default';
ALTER TABLE events DROP CONSTRAINT events_pkey;
ALTER TABLE events ADD PRIMARY KEY (project_id, event_id);
-- the dashboard's recent events of one experiment, newest first
CREATE INDEX events_recent ON events(experiment_id, received_at);
CREATE TABLE idempotency_v3 (
    project_id TEXT NOT NULL, scope TEXT NOT NULL, key TEXT NOT NULL, request_hash TEXT NOT NULL,
    status INTEGER NOT NULL, response BYTEA, created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (project_id, scope, key));
INSERT INTO idempotency_v3 SELECT 'default',
    CASE WHEN scope ~ '^[0-9a-f]{16}:' THEN substr(scope, 18) ELSE scope END,
    key, request_hash, status, response, created_at FROM idempotency ORDER BY created_at ON CONFLICT DO NOTHING;
DROP TABLE idempotency;
ALTER TABLE idempotency_v3 RENAME TO idempotency;
-- the reasons of rejected events, the newest few per project (kept bounded by _projects.keep_rejections)
CREATE TABLE rejections (
    seq BIGSERIAL PRIMARY KEY, project_id TEXT NOT NULL, event_id TEXT, reason TEXT NOT NULL,
    batch_index INTEGER NOT NULL, idempotency_key TEXT, received_at DOUBLE PRECISION NOT NULL);
CREATE INDEX rejections_by_project ON rejections(project_id, seq);
""",
    ),
    (
        4,
        """
-- run metrics (latency, tokens, cost), and the index the results rank an experiment's latencies per variant from
-- (the plans are in docs/experiments.md)
ALTER TABLE runs ADD COLUMN IF NOT EXISTS latency_ms DOUBLE PRECISION, ADD COLUMN IF NOT EXISTS input_tokens BIGINT,
    ADD COLUMN IF NOT EXISTS output_tokens BIGINT, ADD COLUMN IF NOT EXISTS cost_usd DOUBLE PRECISION;
CREATE INDEX IF NOT EXISTS runs_by_latency ON runs(experiment_id, variant, latency_ms);
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
    (
        6,
        """
-- assignments (POST /v1/assignments): the runs recorded without output, for the app to call its own model
CREATE TABLE IF NOT EXISTS assignments (
    project_id TEXT NOT NULL, run_id TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (project_id, run_id));
""",
    ),
    (
        7,
        """
-- the dashboard's accounts (_accounts.py): people who sign in, and their sessions (only a hash of each token)
CREATE TABLE IF NOT EXISTS dashboard_users (
    user_id TEXT PRIMARY KEY, username TEXT NOT NULL UNIQUE, password_hash TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS dashboard_sessions (
    token_hash TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES dashboard_users(user_id), csrf_token TEXT NOT NULL,
    project_id TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL, expires_at DOUBLE PRECISION NOT NULL);
CREATE INDEX IF NOT EXISTS dashboard_sessions_by_user ON dashboard_sessions(user_id);
""",
    ),
    (
        8,
        """
-- rate limits shared by every worker and instance (_ratelimit.py): one token bucket per API key; UNLOGGED, as a
-- bucket is worth nothing after a crash (it refills within a second) and need not cost WAL on every request
CREATE UNLOGGED TABLE IF NOT EXISTS rate_buckets (
    scope TEXT PRIMARY KEY, tokens DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
    granted BOOLEAN NOT NULL);
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


def prepare_connection(conn: psycopg.Connection[Any]) -> None:
    """Every pooled connection (made once the schema is migrated): the NUL escape and the staging table for
    events (a temporary table lives as long as its session, so it is created once per connection, not per batch)."""
    configure(conn)
    conn.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {_STAGING} (LIKE events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS".encode()
    )
    conn.commit()


POOL_WAIT = 10.0  # seconds a request waits for a free connection before it is answered 503


class Pool(ConnectionPool):
    """psycopg_pool's pool, whose wait for a free connection ends in a ``StoreError`` 503 (``database_busy``,
    answered with Retry-After, which the SDK retries) instead of an unexpected error and a 500."""

    def getconn(self, timeout: float | None = None) -> psycopg.Connection[Any]:
        try:
            return super().getconn(timeout)
        except PoolTimeout:
            raise StoreError(503, "database_busy", "every database connection is busy; retry shortly") from None

    @contextlib.contextmanager
    def statement(self, timeout: float | None = None) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection in autocommit, for a statement that needs no transaction around it: psycopg opens a
        transaction with a BEGIN of its own and ends it with a COMMIT, each a round trip, which was a quarter of a
        run's time on PostgreSQL under load (docs/scaling.md). Several statements here see separate snapshots.
        The pool's reset puts the connection back out of autocommit whatever happened here."""
        with self.connection(timeout) as conn:
            conn.autocommit = True
            try:
                yield conn
            finally:
                with contextlib.suppress(psycopg.Error):  # not idle (an interrupted query): the pool's reset or discard
                    conn.autocommit = False


def _leave_autocommit(conn: psycopg.Connection[Any]) -> None:
    conn.autocommit = False  # the pool calls this on an idle connection given back, before anyone else gets it


def open_pool(url: str, *, max_size: int = 16, wait: float = POOL_WAIT) -> Pool:
    """A pool of connections to ``url``, its schema migrated; a request waits at most ``wait`` seconds for a free
    connection. Raises ConnectionError (one line, no password) when the database cannot be reached or migrated: one
    direct connection first, so an unreachable server fails at once rather than after the pool's retries."""
    try:
        with psycopg.connect(url) as conn:
            configure(conn)
            migrate(conn)
    except (psycopg.Error, RuntimeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConnectionError(f"cannot use the PostgreSQL database: {reason}") from None
    pool = Pool(
        url,
        min_size=1,
        max_size=max_size,
        open=False,
        name="promptstream-pg",
        timeout=wait,
        reset=_leave_autocommit,
        configure=prepare_connection,
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


def replay(conn: psycopg.Connection[Any], project_id: str, idempotency: Idempotency | None) -> tuple[int, bytes] | None:
    """The stored (status, body) for a retried request (status 0: still running); 422 when its key was used for
    another body."""
    if idempotency is None:
        return None
    row = conn.execute(
        "SELECT request_hash, status, response FROM idempotency WHERE project_id = %s AND scope = %s AND key = %s",
        (project_id, *idempotency[:2]),
    ).fetchone()
    return stored_answer(row, idempotency[2])


def lock_key(conn: psycopg.Connection[Any], project_id: str, idempotency: Idempotency) -> None:
    """Serialise the transactions of one (project, scope, key) across every connection and server instance."""
    claim = f"{project_id}\x1f{idempotency[0]}\x1f{idempotency[1]}"
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (claim,))


def claim(conn: psycopg.Connection[Any], project_id: str, idempotency: Idempotency) -> None:
    """Mark an idempotent run as running (status 0), for every instance to see; a stale claim is taken over."""
    conn.execute(
        "INSERT INTO idempotency (project_id, scope, key, request_hash, status, response, created_at)"
        " VALUES (%s, %s, %s, %s, 0, NULL, %s) ON CONFLICT (project_id, scope, key) DO UPDATE"
        " SET created_at = EXCLUDED.created_at",
        (project_id, *idempotency, time.time()),
    )


def claimed_at(conn: psycopg.Connection[Any], project_id: str, idempotency: Idempotency) -> float | None:
    query = "SELECT created_at FROM idempotency WHERE project_id = %s AND scope = %s AND key = %s"
    row = conn.execute(query, (project_id, *idempotency[:2])).fetchone()
    return None if row is None else float(row[0])


def release(conn: psycopg.Connection[Any], project_id: str, idempotency: Idempotency) -> None:
    """Give back the claim of a run that failed: a retry may run."""
    query = "DELETE FROM idempotency WHERE project_id = %s AND scope = %s AND key = %s AND status = 0"
    conn.execute(query, (project_id, *idempotency[:2]))


def remember(conn: psycopg.Connection[Any], project_id: str, idempotency: Idempotency, response: bytes) -> None:
    """Keep the answer to an idempotent request (over its claim, if any), in the caller's transaction."""
    conn.execute(
        "INSERT INTO idempotency (project_id, scope, key, request_hash, status, response, created_at)"
        " VALUES (%s, %s, %s, %s, 200, %s, %s) ON CONFLICT (project_id, scope, key) DO UPDATE"
        " SET status = 200, response = EXCLUDED.response",
        (project_id, *idempotency, response, time.time()),
    )


def insert_events(conn: psycopg.Connection[Any], project_id: str, events: list[EventBody], now: float) -> set[str]:
    """COPY the events into the staging table and move them into ``events`` in one statement, in the caller's
    transaction; returns the ids it stored. An id the project already stored (by this or any other connection or
    instance) is skipped by ``ON CONFLICT DO NOTHING`` and absent from the answer, so accepted and duplicate counts
    stay exact. ``events`` must not repeat an id (the caller counts repeats within a batch as duplicates)."""
    if not events:
        return set()
    with conn.cursor().copy(_COPY_EVENTS.encode()) as copy:
        for event in events:
            copy.write_row(event_row(project_id, event, now))
    return {row[0] for row in conn.execute(_MOVE_EVENTS.encode()).fetchall()}


# Refill by the time elapsed on the database's clock (one clock for every instance), then take a token if there is
# one, in one statement: the row lock it takes serialises instances drawing from the same bucket.
_REFILL_AND_TAKE = """
INSERT INTO rate_buckets AS b (scope, tokens, updated_at, granted)
VALUES (%(scope)s, %(size)s - 1, EXTRACT(EPOCH FROM clock_timestamp()), TRUE)
ON CONFLICT (scope) DO UPDATE SET
    granted = LEAST(%(size)s, b.tokens + GREATEST(0, EXCLUDED.updated_at - b.updated_at) * %(rate)s) >= 1,
    tokens = LEAST(%(size)s, b.tokens + GREATEST(0, EXCLUDED.updated_at - b.updated_at) * %(rate)s)
        - CASE WHEN LEAST(%(size)s, b.tokens + GREATEST(0, EXCLUDED.updated_at - b.updated_at) * %(rate)s) >= 1
          THEN 1 ELSE 0 END,
    updated_at = EXCLUDED.updated_at
RETURNING granted, tokens
"""


def take_token(conn: psycopg.Connection[Any], scope: str, rate: float, size: float) -> float:
    """Take a token from ``scope``'s shared bucket: 0.0 when granted, else the seconds until one is free."""
    row = conn.execute(_REFILL_AND_TAKE.encode(), {"scope": scope, "rate": rate, "size": size}).fetchone()
    assert row is not None
    granted, tokens = bool(row[0]), float(row[1])
    return 0.0 if granted else (1 - tokens) / rate


def log_batch(
    conn: psycopg.Connection[Any],
    project_id: str,
    key: str | None,
    events: int,
    accepted: int,
    duplicates: int,
    rejected: int,
    *,
    replayed: bool = False,
) -> None:
    conn.execute(
        "INSERT INTO batch_log (idempotency_key, events, accepted, duplicates, rejected, replayed, received_at,"
        " project_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (key, events, accepted, duplicates, rejected, int(replayed), time.time(), project_id),
    )


class PgSql:
    """A connection with sqlite3's ``?`` marks, for the SQL written once for both backends (_projects.py)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def execute(self, sql: str, parameters: Any = (), /) -> Any:
        return self._conn.execute(sql.replace("?", "%s").encode(), tuple(parameters))

    def executemany(self, sql: str, parameters: Any, /) -> Any:
        with self._conn.cursor() as cursor:
            cursor.executemany(sql.replace("?", "%s").encode(), [tuple(row) for row in parameters])
