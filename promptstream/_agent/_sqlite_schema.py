"""The SQLite spool's schema and the statements its parts share: tables, triggers, pragmas' reasons, migrations,
and the helpers that write many rows in one statement and classify SQLite's errors. ``_sqlite_spool.py`` runs the
transactions; ``_sqlite_dead_letters.py`` and ``_sqlite_files.py`` hold the rest of the spool's SQL."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import msgspec

from ._spool import PayloadChunk, SpoolUnavailableError

APPLICATION_ID = 0x50535450  # "PSTP": marks the file as ours; anything else in our path is quarantined
SCHEMA_VERSION = 2

# Pragmas, chosen deliberately:
# - WAL: the writer (spooler) and the sender, and other processes, never block each other's reads.
# - synchronous=NORMAL: a commit survives a crash of the process (kill -9); only a power cut can lose the last
#   commits. durable=True switches to FULL (an fsync per commit) for those who need power-cut safety.
# - busy_timeout: another process holding the write lock is waited for, not reported as "database is locked".
#   Every write transaction starts with BEGIN IMMEDIATE, because a read that upgrades to a write gets SQLITE_BUSY
#   at once, without waiting.
# - journal_size_limit + wal_checkpoint(TRUNCATE) when the spool drains after a backlog (COMPACT_AFTER_BYTES written):
#   the -wal file does not stay large.
# - auto_vacuum=INCREMENTAL (set before the first table): free pages can be returned to the OS after a backlog.
# - temp_store=MEMORY: a small TMPDIR cannot fail our sorts.
# - max_page_count: a hard ceiling behind our own byte accounting, so a runaway file fails with SQLITE_FULL.
SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: a seq is never reused, so order is total
    created_ms INTEGER NOT NULL,            -- when it was spooled (tracked at most a spool interval before)
    payload BLOB NOT NULL                   -- the event, encoded once in JSON; a batch body joins these bytes
);
-- A batch owns the events whose seq lies in [first_seq, last_seq]: claiming writes one row here and moves the
-- claimed_through mark, instead of updating every claimed event (and an index) as schema 1 did.
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY,                    -- the Idempotency-Key of every attempt at this batch
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    sent_at TEXT NOT NULL,                  -- fixed at first claim so that retries are byte-identical
    bytes INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0     -- attempts made, counting the one in progress
);
CREATE TABLE IF NOT EXISTS dead_letters (
    seq INTEGER PRIMARY KEY,
    created_ms INTEGER NOT NULL,
    payload BLOB NOT NULL,
    reason TEXT NOT NULL,
    dead_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('pending_bytes', 0);
INSERT OR IGNORE INTO meta VALUES ('claimed_through', 0);  -- every seq up to here belongs to a batch
-- dead letters count against max_spool_bytes with the pending events (a file written before they did is counted once)
INSERT OR IGNORE INTO meta SELECT 'dead_bytes', CAST(total(length(payload)) AS INTEGER) FROM dead_letters;
INSERT OR IGNORE INTO meta VALUES ('dead_pruned', 0);  -- the oldest dead letters dropped to stay within the bounds
-- deletes keep pending_bytes inside the statement that deletes (appends do it in one step below)
CREATE TRIGGER IF NOT EXISTS events_removed AFTER DELETE ON events
    BEGIN UPDATE meta SET value = value - length(OLD.payload) WHERE key = 'pending_bytes'; END;
CREATE TRIGGER IF NOT EXISTS dead_letter_added AFTER INSERT ON dead_letters
    BEGIN UPDATE meta SET value = value + length(NEW.payload) WHERE key = 'dead_bytes'; END;
CREATE TRIGGER IF NOT EXISTS dead_letter_removed AFTER DELETE ON dead_letters
    BEGIN UPDATE meta SET value = value - length(OLD.payload) WHERE key = 'dead_bytes'; END;
-- what an acknowledgement refuses, held while the batch's events are deleted (room first: see SqliteSpool.ack)
CREATE TEMP TABLE IF NOT EXISTS refused (seq INTEGER PRIMARY KEY, created_ms INTEGER, payload BLOB, reason TEXT);
"""

# Appending in one statement, where SQLite has JSON1 and window functions (3.25+; checked at open). The spooler
# inserts one row into the view `incoming`: the chunk's payloads as one blob plus a JSON array of their lengths.
# The trigger refuses the chunk if it would pass the cap, cuts the blob apart into events (json_each, a running
# sum, substr), and adds the bytes to pending_bytes, all inside that one statement.
# Why one statement: while an application thread is busy, each sqlite3 call costs the spooler a wait for the GIL of
# up to the switch interval (5 ms), so statements per chunk bound how fast the spool can absorb a burst. Measured
# for 20,000 events: 21 ms, against 35 ms with a per-row trigger and 120 ms for the multi-row VALUES statement's
# first parse.
FAST_APPEND = """
CREATE VIEW IF NOT EXISTS incoming (created_ms, lengths, blob, cap) AS SELECT NULL, NULL, NULL, NULL WHERE 0;
CREATE TRIGGER IF NOT EXISTS incoming_append INSTEAD OF INSERT ON incoming BEGIN
    SELECT RAISE(ABORT, 'promptstream: spool full')
        WHERE (SELECT sum(value) FROM meta WHERE key IN ('pending_bytes', 'dead_bytes')) + length(NEW.blob) > NEW.cap;
    INSERT INTO events (created_ms, payload)
        SELECT NEW.created_ms,
               substr(NEW.blob, 1 + coalesce(sum(value) OVER
                   (ORDER BY key ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0), value)
        FROM json_each(NEW.lengths) ORDER BY key;
    UPDATE meta SET value = value + length(NEW.blob) WHERE key = 'pending_bytes';
END;
"""
SPOOL_FULL = "promptstream: spool full"

# Schema 1 marked claimed events with events.batch_id and kept a size column. Its batches are dropped: their events
# become unclaimed again and are re-sent under new keys, which the server deduplicates by event_id.
MIGRATE_FROM_1 = """
DROP INDEX IF EXISTS events_by_batch;
DROP TABLE IF EXISTS batches;
CREATE TABLE events_2 (seq INTEGER PRIMARY KEY AUTOINCREMENT, created_ms INTEGER NOT NULL, payload BLOB NOT NULL);
INSERT INTO events_2 SELECT seq, created_ms, payload FROM events;
DROP TABLE events;
ALTER TABLE events_2 RENAME TO events;
UPDATE meta SET value = (SELECT total(length(payload)) FROM events) WHERE key = 'pending_bytes';
"""

COUNTS = (
    "SELECT (SELECT value FROM meta WHERE key = 'pending_bytes'), (SELECT value FROM meta WHERE key = 'dead_bytes'),"
    " (SELECT value FROM meta WHERE key = 'dead_pruned'), (SELECT count(*) FROM dead_letters)"
)

# "this event belongs to batch ?": the batch's range as the spool has it, so a batch another process already
# acknowledged (its row deleted) matches nothing
IN_BATCH = "seq BETWEEN (SELECT first_seq FROM batches WHERE id = ?) AND (SELECT last_seq FROM batches WHERE id = ?)"

USED_BYTES = "SELECT sum(value) FROM meta WHERE key IN ('pending_bytes', 'dead_bytes')"


def error_text(exc: BaseException) -> str:
    return str(exc).lower()


def is_transient(exc: sqlite3.Error) -> bool:
    """Locked, busy, full or an I/O error: the data is fine, the moment is not."""
    text = error_text(exc)
    return isinstance(exc, sqlite3.OperationalError) and any(
        marker in text for marker in ("locked", "busy", "full", "disk i/o", "unable to open", "readonly")
    )


def is_full(exc: sqlite3.Error) -> bool:
    return "full" in error_text(exc)


def out_of_space(exc: BaseException) -> bool:
    """SQLITE_FULL, or an I/O error such as a write past a file-size limit: often only the -wal cannot grow."""
    cause = exc.__cause__ if isinstance(exc, SpoolUnavailableError) else exc
    return isinstance(cause, sqlite3.Error) and (is_full(cause) or "disk i/o" in error_text(cause))


# Why not executemany() or fetchall(): Python's sqlite3 releases the GIL around every row's sqlite3_step, and while
# the application is busy (a burst of track_* calls) each re-acquisition waits out the 5 ms switch interval. Measured
# here: 5,000 rows took 4.9 s with executemany against a busy thread, 12.5 ms as multi-row VALUES statements. So
# writes go in statements of many rows, and reads come back as one aggregated row.
_encode_lengths = msgspec.json.Encoder().encode


def incoming(payloads: Sequence[bytes], created_ms: int, cap: int) -> tuple[int, bytes, bytes, int]:
    """The one row the `incoming` view takes for a chunk."""
    if isinstance(payloads, PayloadChunk):  # already joined by the spooler
        return created_ms, _encode_lengths(payloads.lengths.tolist()), payloads.blob, cap
    return created_ms, _encode_lengths(list(map(len, payloads))), b"".join(payloads), cap


def can_append_in_one_statement(db: sqlite3.Connection) -> bool:
    try:
        db.execute("SELECT sum(value) OVER (ORDER BY key) FROM json_each('[1]')").fetchall()
    except sqlite3.OperationalError:
        return False
    return True


# The fallback where SQLite lacks JSON1 or window functions: multi-row VALUES statements (never executemany: it
# releases and retakes the GIL for every row). Two parameters a row, and SQLite allows 32,766 per statement since
# 3.32, 999 before. Plain "?" placeholders: Python 3.14 refuses numbered ones with a sequence of parameters.
_ROWS_PER_INSERT = 16_000 if sqlite3.sqlite_version_info >= (3, 32, 0) else 499


def insert_rows(db: sqlite3.Connection, payloads: Sequence[bytes], created_ms: int) -> None:
    for start in range(0, len(payloads), _ROWS_PER_INSERT):
        chunk = payloads[start : start + _ROWS_PER_INSERT]
        params = [value for payload in chunk for value in (created_ms, payload)]
        db.execute("INSERT INTO events (created_ms, payload) VALUES " + ",".join(["(?,?)"] * len(chunk)), params)


def prefix_within(payloads: Sequence[bytes], room: int) -> tuple[Sequence[bytes], int]:
    """The longest prefix whose bytes fit in ``room`` (the cap drops the newest), and its size."""
    lengths: Sequence[int] = payloads.lengths if isinstance(payloads, PayloadChunk) else list(map(len, payloads))
    total = sum(lengths)
    if total <= room:
        return payloads, total
    total = count = 0
    for length in lengths:
        if total + length > room:
            break
        total += length
        count += 1
    return payloads[:count], total


def select_events(db: sqlite3.Connection, where: str, args: tuple[object, ...]) -> list[tuple[int, bytes]]:
    """(seq, payload) of the matching events, oldest first, fetched in a single step (see above)."""
    seqs, sizes, blob = db.execute(
        "SELECT group_concat(seq), group_concat(length(payload)), CAST(group_concat(payload, '') AS BLOB)"
        f" FROM (SELECT seq, payload FROM events WHERE {where})",
        args,
    ).fetchone()
    if seqs is None:
        return []
    rows: list[tuple[int, bytes]] = []
    offset = 0
    for seq, size in zip(seqs.split(","), sizes.split(","), strict=True):
        end = offset + int(size)
        rows.append((int(seq), blob[offset:end]))
        offset = end
    # group_concat's order is SQLite's choice: sort, so a batch is always formed (and re-formed) in seq order
    rows.sort()
    return rows
