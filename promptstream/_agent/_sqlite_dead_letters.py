"""The SQLite spool's dead letters: the events the server refused, kept for a person to read, replay or purge.

Bounded (``MAX_DEAD_LETTERS`` and a share of ``max_spool_bytes``, see ``_spool.py``), the oldest pruned first and
counted in ``meta.dead_pruned``; their bytes (``meta.dead_bytes``, kept by triggers) count against the cap. Every
function here runs inside a write transaction its caller (``SqliteSpool``) holds.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from ._spool import MAX_DEAD_LETTERS, DeadLetter, dead_letter_byte_cap
from ._sqlite_schema import IN_BATCH, is_full

__all__ = ["hold_refused", "keep_held", "move_from_attached", "prune", "read", "replay", "shed_half"]


def hold_refused(db: sqlite3.Connection, batch_id: str, refused: Sequence[tuple[int, str]]) -> None:
    """Copy the refused events of a batch aside (temp.refused), so that the batch can be deleted first."""
    for seq, reason in refused:  # rare (a refusal), so one statement each is fine
        db.execute(
            "INSERT OR IGNORE INTO temp.refused SELECT seq, created_ms, payload, ? FROM events"
            f" WHERE seq = ? AND {IN_BATCH}",
            (reason, seq, batch_id, batch_id),
        )


def keep_held(db: sqlite3.Connection, now_ms: int, *, max_spool_bytes: int, windows: bool) -> None:
    """Insert what hold_refused set aside as dead letters, then prune to the bounds. Should the file have no page
    left for them (a full disk), they are counted as pruned instead, and the acknowledgement still commits."""
    try:
        db.execute("SAVEPOINT keep_dead_letters")
        db.execute(
            "INSERT OR IGNORE INTO dead_letters SELECT seq, created_ms, payload, reason, ? FROM temp.refused",
            (now_ms,),
        )
        db.execute("RELEASE keep_dead_letters")
    except sqlite3.OperationalError as exc:
        if not (is_full(exc) and db.in_transaction):
            raise
        db.execute("ROLLBACK TO keep_dead_letters")
        db.execute("RELEASE keep_dead_letters")
        db.execute("UPDATE meta SET value = value + (SELECT count(*) FROM temp.refused) WHERE key = 'dead_pruned'")
    db.execute("DELETE FROM temp.refused")
    prune(db, max_spool_bytes=max_spool_bytes, windows=windows)


def count_as_pruned(db: sqlite3.Connection, batch_id: str, how_many: int) -> None:
    db.execute(
        "UPDATE meta SET value = value + ? WHERE key = 'dead_pruned' AND EXISTS (SELECT 1 FROM batches WHERE id = ?)",
        (how_many, batch_id),
    )
    db.execute("DELETE FROM temp.refused")


def prune(db: sqlite3.Connection, *, max_spool_bytes: int, windows: bool) -> None:
    """Drop the oldest dead letters beyond MAX_DEAD_LETTERS or the byte share of the cap, and count them."""
    count, dead_bytes = db.execute(
        "SELECT count(*), (SELECT value FROM meta WHERE key = 'dead_bytes') FROM dead_letters"
    ).fetchone()
    byte_cap = dead_letter_byte_cap(max_spool_bytes)
    if count <= MAX_DEAD_LETTERS and dead_bytes <= byte_cap:
        return
    if windows:
        # the newest that fit are kept: everything at or below the newest seq that does not fit goes
        (cutoff,) = db.execute(
            "SELECT max(seq) FROM (SELECT seq, sum(length(payload)) OVER newer AS kept_bytes,"
            " row_number() OVER newer AS kept FROM dead_letters"
            " WINDOW newer AS (ORDER BY seq DESC ROWS UNBOUNDED PRECEDING))"
            " WHERE kept_bytes > ? OR kept > ?",
            (byte_cap, MAX_DEAD_LETTERS),
        ).fetchone()
        removed = db.execute("DELETE FROM dead_letters WHERE seq <= ?", (cutoff,)).rowcount
    else:
        removed = 0
        while count > MAX_DEAD_LETTERS or dead_bytes > byte_cap:
            (size,) = db.execute("SELECT length(payload) FROM dead_letters ORDER BY seq LIMIT 1").fetchone()
            db.execute("DELETE FROM dead_letters WHERE seq = (SELECT min(seq) FROM dead_letters)")
            count, dead_bytes, removed = count - 1, dead_bytes - size, removed + 1
    db.execute("UPDATE meta SET value = value + ? WHERE key = 'dead_pruned'", (removed,))


def shed_half(db: sqlite3.Connection) -> None:
    """The disk is full: drop the older half of the dead letters (counted as pruned) to make room for new events."""
    removed = db.execute(
        "DELETE FROM dead_letters WHERE seq IN (SELECT seq FROM dead_letters ORDER BY seq"
        " LIMIT (SELECT (count(*) + 1) / 2 FROM dead_letters))"
    ).rowcount
    db.execute("UPDATE meta SET value = value + ? WHERE key = 'dead_pruned'", (removed,))


def read(db: sqlite3.Connection, limit: int | None) -> list[DeadLetter]:
    """The dead letters, oldest first (at most MAX_DEAD_LETTERS, so one list is fine)."""
    rows = db.execute(
        "SELECT seq, created_ms, dead_at_ms, reason, payload FROM dead_letters ORDER BY seq LIMIT ?",
        (-1 if limit is None else limit,),
    ).fetchall()
    return [DeadLetter(int(s), int(c), int(d), str(r), bytes(p)) for s, c, d, r, p in rows]


def replay(db: sqlite3.Connection) -> int:
    """Move every dead letter back to the end of the queue as a new event (the server dedups by event_id)."""
    moved = db.execute(
        "INSERT INTO events (created_ms, payload) SELECT created_ms, payload FROM dead_letters ORDER BY seq"
    ).rowcount
    db.execute(
        "UPDATE meta SET value = value + (SELECT value FROM meta WHERE key = 'dead_bytes') WHERE key = 'pending_bytes'"
    )
    db.execute("DELETE FROM dead_letters")
    return int(moved)


def move_from_attached(db: sqlite3.Connection, *, max_spool_bytes: int, windows: bool) -> int:
    """Move the events and dead letters of the spool attached as ``other`` behind ours; returns the events moved.
    Its batches are dropped, so their events go out again under new keys (the server dedups by event_id)."""
    moved = db.execute(
        "INSERT INTO events (created_ms, payload) SELECT created_ms, payload FROM other.events ORDER BY seq"
    ).rowcount
    db.execute(
        "UPDATE meta SET value = value + (SELECT total(length(payload)) FROM other.events) WHERE key = 'pending_bytes'"
    )
    db.execute(
        "INSERT INTO dead_letters (created_ms, payload, reason, dead_at_ms)"
        " SELECT created_ms, payload, reason, dead_at_ms FROM other.dead_letters ORDER BY seq"
    )
    # no trigger of ours fires on the other file's tables: plain deletes, and its counters reset by hand
    db.execute("DELETE FROM other.events")
    db.execute("DELETE FROM other.batches")
    db.execute("DELETE FROM other.dead_letters")
    db.execute("UPDATE other.meta SET value = 0 WHERE key IN ('pending_bytes', 'dead_bytes')")
    prune(db, max_spool_bytes=max_spool_bytes, windows=windows)
    return int(moved)
