"""Spool files as wholes: read one without writing anything (``spool status``, ``spool dead-letters``), move a
broken one aside, delete one. Under the same lock beside the file as opening it (``_platform.py``)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from pathlib import Path

from ._platform import exclusive_file_lock
from ._spool import DeadLetter, SpoolCorruptError, SpoolCounts
from ._sqlite_schema import APPLICATION_ID, COUNTS

__all__ = ["delete_spool", "quarantine", "quarantine_spool", "read_counts", "read_dead_letters"]


def _uri_path(path: Path) -> str:
    from urllib.request import pathname2url

    return pathname2url(str(path.resolve()))


def read_counts(path: Path) -> SpoolCounts:
    """What a spool file holds, read without creating, migrating or writing anything (``spool status``)."""
    db = sqlite3.connect(f"file:{_uri_path(path)}?mode=ro", uri=True, timeout=5.0)
    try:
        if db.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
            raise SpoolCorruptError(f"{path} is not a PromptStream spool")
        ((pending, oldest),) = db.execute("SELECT count(*), min(created_ms) FROM events").fetchall()
        ((pending_bytes, dead_bytes, pruned, dead),) = db.execute(COUNTS).fetchall()
        return SpoolCounts(
            int(pending),
            int(pending_bytes),
            int(dead),
            None if oldest is None else int(oldest),
            int(dead_bytes or 0),  # a file of an earlier version has no such rows
            int(pruned or 0),
        )
    except sqlite3.DatabaseError as exc:
        raise SpoolCorruptError(f"{path}: {exc}") from exc
    finally:
        db.close()


def read_dead_letters(path: Path, limit: int | None = None) -> list[DeadLetter]:
    """The dead letters of a spool file, oldest first, read-only."""
    db = sqlite3.connect(f"file:{_uri_path(path)}?mode=ro", uri=True, timeout=5.0)
    try:
        rows = db.execute(
            "SELECT seq, created_ms, dead_at_ms, reason, payload FROM dead_letters ORDER BY seq LIMIT ?",
            (-1 if limit is None else limit,),
        ).fetchall()
    except sqlite3.DatabaseError as exc:
        raise SpoolCorruptError(f"{path}: {exc}") from exc
    finally:
        db.close()
    return [DeadLetter(int(s), int(c), int(d), str(r), bytes(p)) for s, c, d, r, p in rows]


def quarantine_spool(path: Path) -> str:
    """Move a spool that failed at run time aside, under the same lock as the check at open."""
    with exclusive_file_lock(path):
        return quarantine(path)


def delete_spool(path: Path) -> None:
    """Delete a spool and everything in it (``promptstream spool purge``), under the lock of open and quarantine."""
    with exclusive_file_lock(path):
        for suffix in ("-wal", "-shm", ""):
            with contextlib.suppress(FileNotFoundError):
                os.remove(f"{path}{suffix}")


def quarantine(path: Path) -> str:
    """Move the database and its -wal/-shm aside together (a -wal must never meet another database)."""
    stamp = time.strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}"
    target = f"{path}.corrupt-{stamp}"
    for suffix in ("-wal", "-shm", ""):
        with contextlib.suppress(FileNotFoundError):
            os.replace(f"{path}{suffix}", f"{target}{suffix}")
    return target
