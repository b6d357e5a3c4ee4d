"""Opening the SQLite spool's file: pragmas, page size, the schema and its migrations, the hard page ceiling, and
moving aside a file that is not a usable spool. ``_sqlite_spool.py`` runs the transactions on what this opens."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from pathlib import Path

from . import _sqlite_dead_letters as dead_sql
from ._platform import exclusive_file_lock
from ._spool import SpoolCorruptError, SpoolUnavailableError
from ._sqlite_files import quarantine
from ._sqlite_schema import (
    APPLICATION_ID,
    FAST_APPEND,
    MIGRATE_FROM_1,
    SCHEMA,
    SCHEMA_VERSION,
    can_append_in_one_statement,
    is_transient,
)

__all__ = ["CHECKPOINT_EVERY_BYTES", "COMPACT_AFTER_BYTES", "open_or_quarantine", "open_spool_file"]

logger = logging.getLogger("promptstream")

_PAGE_OVERHEAD_FACTOR = 3  # rows, index entries and free pages on top of the payload bytes

# When the WAL is copied back into the database file (a checkpoint). SQLite's default does it inside whichever commit
# takes the WAL past 1,000 pages, so every few appends of a burst paid for one: measured while the application thread
# was busy, an append of 20,000 events took 60-74 ms when it checkpointed against 30-37 ms when it did not, and the
# spooler fell behind the caller (docs/benchmarks.md). So the spooler checkpoints between bursts, once this much was
# written (TrackingAgent._checkpoint_unless_in_a_burst). SQLite's own trigger stays as a valve at twice the spool's
# cap (16-512 MiB): above what filling the spool once writes, so a burst into an empty spool never meets it, while a
# producer that never lets the spooler catch up cannot grow the WAL without bound.
CHECKPOINT_EVERY_BYTES = 16 * 1024 * 1024
# SqliteSpool.compact_if_empty() (checkpoint, incremental vacuum, WAL truncation) runs only once this many payload
# bytes were written since the last checkpoint: after a backlog, not after every small delivery, since a web app's
# steady traffic empties the spool twice a second and compacting each time was a visible share of the background
# CPU (docs/benchmarks.md). 4 MiB is the journal_size_limit: a smaller WAL is not kept larger than that anyway.
COMPACT_AFTER_BYTES = 4 * 1024 * 1024
_MAX_CHECKPOINT_VALVE_BYTES = 512 * 1024 * 1024


def open_or_quarantine(
    path: Path, *, max_bytes: int, durable: bool, quarantined: list[str]
) -> tuple[sqlite3.Connection, bool]:
    """Open the spool at ``path``; a file that is not a usable spool is moved aside (its reason appended to
    ``quarantined``) and a fresh one started. Returns what open_spool_file returns."""
    with exclusive_file_lock(path):
        try:
            return open_spool_file(path, max_bytes=max_bytes, durable=durable)
        except SpoolCorruptError as exc:
            reason = str(exc)
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and is_transient(exc):
                raise SpoolUnavailableError(str(exc)) from exc
            reason = f"{type(exc).__name__}: {exc}"
        moved = quarantine(path)
        quarantined.append(reason)
        logger.warning("promptstream spool %s was unusable (%s); moved aside as %s", path, reason, moved)
        return open_spool_file(path, max_bytes=max_bytes, durable=durable)


def open_spool_file(path: Path, *, max_bytes: int, durable: bool) -> tuple[sqlite3.Connection, bool]:
    """Open (creating, migrating, bounding) the spool at ``path``: the connection, and whether this SQLite appends
    in one statement and prunes with window functions (JSON1 and window functions, 3.25+)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    db = sqlite3.connect(path, timeout=5.0, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA busy_timeout=5000")
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if app_id != APPLICATION_ID and not (app_id == 0 and tables == 0):
            raise SpoolCorruptError(f"not a PromptStream spool (application_id={app_id})")
        if version > SCHEMA_VERSION:
            raise SpoolCorruptError(f"spool schema {version} is newer than this SDK's {SCHEMA_VERSION}")
        migration = MIGRATE_FROM_1 if version == 1 and tables else ""
        # No PRAGMA quick_check here: it reads the whole file, and a process starting over a large backlog (or
        # every forked worker) could not spool anything until it finished, so a crash then lost far more than
        # the 50 ms window. Damage deeper than the header surfaces as SQLITE_CORRUPT when the pages are used,
        # and the agent quarantines the file then.
        if tables == 0:
            # 16 KiB pages: an event of a few hundred bytes costs less page bookkeeping; measured here, 20,000
            # events were stored in 35 ms instead of 49 ms with the default 4 KiB. Only a new file can choose,
            # and before auto_vacuum, which fixes the page size of an empty file.
            db.execute("PRAGMA page_size=16384")
            db.execute("PRAGMA auto_vacuum=INCREMENTAL")
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise SpoolUnavailableError(f"WAL mode is not available here (got {mode!r})")
        db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        db.execute("PRAGMA journal_size_limit=4194304")
        db.execute("PRAGMA temp_store=MEMORY")
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        valve_bytes = min(_MAX_CHECKPOINT_VALVE_BYTES, max(CHECKPOINT_EVERY_BYTES, 2 * max_bytes))
        db.execute(f"PRAGMA wal_autocheckpoint={valve_bytes // page_size}")
        max_pages = (max_bytes * _PAGE_OVERHEAD_FACTOR + 8 * 1024 * 1024) // page_size
        db.execute(f"PRAGMA max_page_count={int(max_pages)}")
        one_statement = can_append_in_one_statement(db)
        fast_append = FAST_APPEND if one_statement else ""
        trigger = db.execute("SELECT sql FROM sqlite_master WHERE name = 'incoming_append'").fetchone()
        if fast_append and trigger and "dead_bytes" not in trigger[0]:
            fast_append = "DROP TRIGGER incoming_append;" + fast_append  # an earlier version's, without them
        # executescript() would COMMIT an open transaction first, so the script carries its own; the file
        # lock we hold keeps two processes from initialising the same file at once.
        try:
            db.executescript(
                "BEGIN IMMEDIATE;"
                + migration
                + SCHEMA
                + fast_append
                + f"PRAGMA application_id={APPLICATION_ID}; PRAGMA user_version={SCHEMA_VERSION}; COMMIT;"
            )
            # a file from before the bounds may hold any number of dead letters: bring it within them now
            db.execute("BEGIN IMMEDIATE")
            dead_sql.prune(db, max_spool_bytes=max_bytes, windows=one_statement)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.chmod(f"{path}{suffix}", 0o600)
    except BaseException:
        db.close()
        raise
    return db, one_statement
