"""The durable spool: a WAL-mode SQLite file, shared safely by every process that sends to the same base URL.
This module runs the transactions; ``_sqlite_open.py`` opens the file (pragmas, schema, migrations, quarantine), and
the SQL they share lives beside them, in ``_sqlite_schema.py`` (tables, triggers, statements),
``_sqlite_dead_letters.py`` (refused events) and ``_sqlite_files.py`` (whole files, read-only reads).
``_spool.py`` has the interface it implements and its in-memory twin.

Life of an event: ``append`` gives it a ``seq``; ``claim`` puts the oldest unclaimed events into a *batch* whose id
is the request's Idempotency-Key and whose ``sent_at`` is fixed, and leases it to one process; ``ack`` deletes the
batch and its events after a 2xx (moving events the server rejected to the dead-letter table); ``split`` halves a
batch the server refused as a whole; ``release`` gives the lease back without sending. A batch whose lease expired,
or whose owner process is dead, is taken over *as it is* by the next claim, so its retry is byte-identical.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from . import _sqlite_dead_letters as dead_sql
from ._location import prepare_spool_directory
from ._platform import exclusive_file_lock, owner_is_dead
from ._spool import AppendResult, ClaimedBatch, DeadLetter, SpoolCorruptError, SpoolCounts, SpoolUnavailableError
from ._sqlite_files import delete_spool, quarantine_spool, read_counts, read_dead_letters
from ._sqlite_open import CHECKPOINT_EVERY_BYTES, COMPACT_AFTER_BYTES, open_or_quarantine, open_spool_file
from ._sqlite_schema import (
    APPLICATION_ID,
    COUNTS,
    IN_BATCH,
    SPOOL_FULL,
    USED_BYTES,
    incoming,
    insert_rows,
    is_full,
    is_transient,
    out_of_space,
    prefix_within,
    select_events,
)

__all__ = ["APPLICATION_ID", "SqliteSpool", "delete_spool", "quarantine_spool", "read_counts", "read_dead_letters"]

logger = logging.getLogger("promptstream")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class SqliteSpool:
    """The durable spool. Thread-safe: one connection guarded by one lock, held only for a short transaction."""

    def __init__(
        self,
        path: Path,
        *,
        owner: str,
        max_bytes: int,
        lease_seconds: float,
        durable: bool = False,
        adopt: Sequence[Path] = (),
    ) -> None:
        self.path: str | None = str(path)
        self._path = path
        self._owner = owner
        self._max_bytes = max_bytes
        self._lease_ms = int(lease_seconds * 1000)
        self._durable = durable
        self._lock = threading.Lock()
        self._suspended = False
        self._written_since_checkpoint = 0  # payload bytes appended or deleted: what the WAL has grown by, roughly
        # SQLite with JSON1 and window functions (3.25+): appends in one statement, prunes in one; set by _open
        self._fast_append = self._windows = False
        self.quarantined: list[str] = []
        prepare_spool_directory(path.parent)
        self._db: sqlite3.Connection | None
        self._db, self._fast_append = open_or_quarantine(
            path, max_bytes=max_bytes, durable=durable, quarantined=self.quarantined
        )
        self._windows = self._fast_append
        self.adopted: int = 0
        for other in adopt:
            self.adopted += self.adopt(other)

    def adopt(self, other: Path) -> int:
        """Move the events and dead letters of another spool file (one of an earlier version, kept per API key, or
        one a user names) into this one, behind what is here; its batches are dropped, so their events go out again
        under new keys (the server dedups by event_id). Returns how many pending events moved; 0 when ``other``
        does not exist or is not a spool we can read (it is left as it is)."""
        if not other.exists() or other.resolve() == self._path.resolve():
            return 0
        with exclusive_file_lock(other), self._lock:
            db = self._connection()
            try:
                db.execute("ATTACH DATABASE ? AS other", (str(other),))
            except sqlite3.Error as exc:
                logger.debug("spool %s not adopted: %s", other, exc)
                return 0
            try:
                if db.execute("PRAGMA other.application_id").fetchone()[0] != APPLICATION_ID:
                    return 0
                db.execute("BEGIN IMMEDIATE")
                try:
                    moved = dead_sql.move_from_attached(db, max_spool_bytes=self._max_bytes, windows=self._windows)
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                logger.warning("promptstream: could not adopt the events of spool %s (%s)", other, exc)
                return 0
            finally:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("DETACH DATABASE other")
        if moved:
            logger.info("promptstream: adopted %d pending events from spool %s", moved, other)
        return int(moved)

    # -- the transaction every write uses -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _using_connection(self) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock. Any error rolls back an open transaction explicitly (SQLITE_FULL can
        leave one open) and surfaces as SpoolUnavailableError (transient) or SpoolCorruptError."""
        with self._lock:
            db = self._connection()
            try:
                yield db
            except BaseException as exc:
                if db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                if not isinstance(exc, sqlite3.Error):
                    raise
                if out_of_space(exc):
                    # A full disk often has room for the data but not for the -wal to grow: copying the WAL back
                    # and truncating it lets the next write (the caller's retry) start from an empty WAL.
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                        self._written_since_checkpoint = 0
                if is_transient(exc):
                    raise SpoolUnavailableError(str(exc)) from exc
                raise SpoolCorruptError(str(exc)) from exc

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE .. COMMIT; see _using_connection for errors."""
        with self._using_connection() as db:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")

    def _read(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        with self._using_connection() as db:
            return db.execute(sql, args).fetchall()

    # -- the interface --------------------------------------------------------------------------------------------

    def append(self, payloads: Sequence[bytes], created_ms: int) -> AppendResult:
        """Store events, all of them or the longest prefix that fits under the cap (the newest are dropped);
        ``created_ms`` is when they were spooled. Usually one statement (see FAST_APPEND)."""
        if not payloads:
            return AppendResult(0, 0)
        try:
            try:
                return self._append_once(payloads, created_ms)
            except SpoolUnavailableError as exc:
                if not out_of_space(exc):
                    raise
            # once more, after the checkpoint that failure ran, and with room made by the oldest dead letters:
            # events still to be delivered matter more than events the server already refused
            self._shed_dead_letters()
            return self._append_once(payloads, created_ms)
        except SpoolUnavailableError as exc:
            if isinstance(exc.__cause__, sqlite3.Error) and is_full(exc.__cause__):
                # the disk (or max_page_count) is full: the same policy as our own cap, newest dropped
                return AppendResult(0, len(payloads))
            raise

    def _append_once(self, payloads: Sequence[bytes], created_ms: int) -> AppendResult:
        if self._fast_append:
            with self._using_connection() as db:
                try:
                    row = incoming(payloads, created_ms, self._max_bytes)
                    db.execute("INSERT INTO incoming VALUES (?, ?, ?, ?)", row)
                    self._written_since_checkpoint += len(row[2])
                    return AppendResult(len(payloads), 0)
                except sqlite3.IntegrityError as exc:
                    if SPOOL_FULL not in str(exc):
                        raise
        # near the cap (or without the fast path): the longest prefix that fits, in a transaction
        with self._write() as db:
            used = db.execute(USED_BYTES).fetchone()[0]
            accepted, total = prefix_within(payloads, self._max_bytes - used)
            if accepted and self._fast_append:
                db.execute("INSERT INTO incoming VALUES (?, ?, ?, ?)", incoming(accepted, created_ms, sys.maxsize))
            elif accepted:
                insert_rows(db, accepted, created_ms)
                db.execute("UPDATE meta SET value = value + ? WHERE key = 'pending_bytes'", (total,))
            self._written_since_checkpoint += total
        return AppendResult(len(accepted), len(payloads) - len(accepted))

    def claim(self, max_events: int, max_bytes: int, sent_at: str) -> ClaimedBatch | None:
        with self._write() as db:
            # The clock is read once the write lock is ours, never before BEGIN IMMEDIATE: a worker that waited
            # for the lock behind another's claim would otherwise see that fresh lease as further ahead than a
            # whole lease, take it for a clock jump, and send the same batch again.
            now = _now_ms()
            taken = self._take_over_abandoned(db, now)
            if taken is not None:
                return taken
            claimed_through = db.execute("SELECT value FROM meta WHERE key = 'claimed_through'").fetchone()[0]
            rows = select_events(db, "seq > ? ORDER BY seq LIMIT ?", (claimed_through, max_events))
            if not rows:
                return None
            chosen: list[tuple[int, bytes]] = []
            total = 0
            for seq, payload in rows:
                if chosen and total + len(payload) > max_bytes:
                    break
                chosen.append((seq, payload))
                total += len(payload)
            batch_id = str(uuid.uuid4())
            self._insert_batch(db, batch_id, chosen[0][0], chosen[-1][0], sent_at, total, now)
            db.execute("UPDATE meta SET value = ? WHERE key = 'claimed_through'", (chosen[-1][0],))
            return ClaimedBatch(batch_id, sent_at, tuple(s for s, _ in chosen), tuple(bytes(p) for _, p in chosen), 0)

    def _insert_batch(
        self, db: sqlite3.Connection, batch_id: str, first_seq: int, last_seq: int, sent_at: str, size: int, now: int
    ) -> None:
        # attempts starts at 1: the caller sends at once, without a renew() first
        db.execute(
            "INSERT INTO batches (id, first_seq, last_seq, sent_at, bytes, lease_owner, lease_until_ms, attempts)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 1)",
            (batch_id, first_seq, last_seq, sent_at, size, self._owner, now + self._lease_ms),
        )

    def _take_over_abandoned(self, db: sqlite3.Connection, now: int) -> ClaimedBatch | None:
        """A formed batch nobody is sending: its lease lapsed or was released (ours too, e.g. after a pause), or
        its owner process is dead. It is resent exactly as it was formed."""
        # oldest events first (FIFO), whatever order the batches were formed or split in
        candidates = db.execute(
            "SELECT id, first_seq, last_seq, sent_at, lease_owner, lease_until_ms, attempts FROM batches"
            " ORDER BY first_seq"
        ).fetchall()
        for batch_id, first_seq, last_seq, sent_at, owner, lease_until, attempts in candidates:
            # Leases are wall-clock times shared between processes. One further ahead than a whole lease can only
            # come from a clock that jumped back (or a peer's clock ahead): treat it as lapsed, never as a lock
            # held for a day. A jump forward only makes leases lapse early: a resend with the same key, deduped.
            live = now < lease_until <= now + self._lease_ms
            if live and (owner == self._owner or not owner_is_dead(owner)):
                continue
            db.execute(
                "UPDATE batches SET lease_owner = ?, lease_until_ms = ?, attempts = attempts + 1 WHERE id = ?",
                (self._owner, now + self._lease_ms, batch_id),
            )
            rows = select_events(db, "seq BETWEEN ? AND ?", (first_seq, last_seq))
            if not rows:  # acknowledged events already gone; nothing left to send
                db.execute("DELETE FROM batches WHERE id = ?", (batch_id,))
                continue
            return ClaimedBatch(
                batch_id, sent_at, tuple(s for s, _ in rows), tuple(bytes(p) for _, p in rows), attempts
            )
        return None

    def renew(self, batch: ClaimedBatch) -> bool:
        """Extend our lease before a retry (claim, split and take-over lease for the first attempt); False when
        another process has taken the batch over."""
        with self._write() as db:
            cursor = db.execute(
                "UPDATE batches SET lease_until_ms = ?, attempts = attempts + 1 WHERE id = ? AND lease_owner = ?",
                (_now_ms() + self._lease_ms, batch.batch_id, self._owner),
            )
            return cursor.rowcount == 1

    def ack(self, batch: ClaimedBatch, rejected: Sequence[tuple[int, str]]) -> None:
        """Delete the batch; keep the events the server refused as dead letters (within the bounds)."""
        refused = {batch.seqs[index]: reason for index, reason in rejected if 0 <= index < len(batch.seqs)}
        self._bury(batch, sorted(refused.items()))

    def dead_letter(self, batch: ClaimedBatch, reason: str) -> None:
        self._bury(batch, [(seq, reason) for seq in batch.seqs])

    def _bury(self, batch: ClaimedBatch, refused: Sequence[tuple[int, str]]) -> None:
        """Acknowledge in every state: the batch's events are deleted *before* the dead letters are inserted, so
        their pages are free for them, and should the file still be at its ceiling (a disk that filled up), the
        acknowledgement commits without the dead letters, which are counted as pruned. A spool that cannot
        acknowledge would resend the batch, and refuse new events, for ever."""
        for _ in range(2):  # the second time after the checkpoint a failure for lack of space runs
            try:
                self._bury_once(batch, refused)
                return
            except SpoolUnavailableError as exc:
                if not out_of_space(exc):
                    raise
        # still no room, and SQLite rolled the whole transaction back: acknowledge without keeping anything
        with self._write() as db:
            dead_sql.count_as_pruned(db, batch.batch_id, len(refused))
            self._delete_batch(db, batch)

    def _bury_once(self, batch: ClaimedBatch, refused: Sequence[tuple[int, str]]) -> None:
        with self._write() as db:
            dead_sql.hold_refused(db, batch.batch_id, refused)
            self._delete_batch(db, batch)  # first: its pages are then free for the dead letters
            dead_sql.keep_held(db, _now_ms(), max_spool_bytes=self._max_bytes, windows=self._windows)

    def _shed_dead_letters(self) -> None:
        with contextlib.suppress(SpoolUnavailableError), self._write() as db:
            dead_sql.shed_half(db)

    def _delete_batch(self, db: sqlite3.Connection, batch: ClaimedBatch) -> None:
        db.execute(f"DELETE FROM events WHERE {IN_BATCH}", (batch.batch_id, batch.batch_id))
        db.execute("DELETE FROM batches WHERE id = ?", (batch.batch_id,))
        self._written_since_checkpoint += batch.size

    def split(self, batch: ClaimedBatch) -> list[ClaimedBatch]:
        """Replace a batch refused as a whole (413, 400, 422) by two halves with new keys, both leased to us."""
        half = max(1, len(batch.seqs) // 2)
        parts = [(batch.seqs[:half], batch.payloads[:half]), (batch.seqs[half:], batch.payloads[half:])]
        result: list[ClaimedBatch] = []
        with self._write() as db:
            now = _now_ms()  # inside the transaction, as in claim()
            db.execute("DELETE FROM batches WHERE id = ?", (batch.batch_id,))
            for seqs, payloads in parts:
                if not seqs:
                    continue
                batch_id = str(uuid.uuid4())
                self._insert_batch(db, batch_id, seqs[0], seqs[-1], batch.sent_at, sum(len(p) for p in payloads), now)
                result.append(ClaimedBatch(batch_id, batch.sent_at, seqs, payloads, 0))
        return result

    def release(self, batch: ClaimedBatch) -> None:
        """Give the lease back (on close) so another process can send the batch at once, with the same key."""
        with self._write() as db:
            db.execute(
                "UPDATE batches SET lease_until_ms = 0 WHERE id = ? AND lease_owner = ?",
                (batch.batch_id, self._owner),
            )

    def has_pending_through(self, seq: int) -> bool:
        return bool(self._read("SELECT EXISTS (SELECT 1 FROM events WHERE seq <= ?)", (seq,))[0][0])

    def last_seq(self) -> int:
        """The newest event's seq (0 when empty): what a flush must see acknowledged."""
        return int(self._read("SELECT coalesce(max(seq), 0) FROM events")[0][0])

    def counts(self) -> SpoolCounts:
        ((pending, oldest),) = self._read("SELECT count(*), min(created_ms) FROM events")
        ((pending_bytes, dead_bytes, pruned, dead),) = self._read(COUNTS)
        return SpoolCounts(
            int(pending), int(pending_bytes), int(dead), None if oldest is None else int(oldest), dead_bytes, pruned
        )

    def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        """The dead letters, oldest first."""
        with self._using_connection() as db:
            return dead_sql.read(db, limit)

    def replay_dead_letters(self) -> int:
        """Move every dead letter back to the end of the queue as a new event (the server dedups by event_id)."""
        with self._write() as db:
            return dead_sql.replay(db)

    def purge_dead_letters(self) -> int:
        with self._write() as db:
            return int(db.execute("DELETE FROM dead_letters").rowcount)

    def compact_if_empty(self) -> None:
        """After a backlog drains (COMPACT_AFTER_BYTES written): truncate the WAL and give free pages back, so an
        idle spool is small. Not after every small delivery (see COMPACT_AFTER_BYTES)."""
        if self._written_since_checkpoint < COMPACT_AFTER_BYTES:
            return
        with self._lock:
            try:
                db = self._connection()
                if db.execute("SELECT EXISTS (SELECT 1 FROM events)").fetchone()[0]:
                    return
                db.execute("PRAGMA incremental_vacuum")
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self._written_since_checkpoint = 0
            except sqlite3.Error as exc:
                logger.debug("spool compaction skipped: %s", exc)

    def checkpoint_if_due(self) -> bool:
        """Copy the WAL back into the database file if enough was written since the last time (see
        CHECKPOINT_EVERY_BYTES). The spooler calls this between bursts, never inside an append."""
        if self._written_since_checkpoint < CHECKPOINT_EVERY_BYTES:
            return False
        with self._lock:
            try:
                busy = self._connection().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[0]
            except (sqlite3.Error, SpoolUnavailableError, SpoolCorruptError) as exc:
                # the next write meets the same problem and handles it; a checkpoint can wait
                logger.debug("spool checkpoint skipped: %s", exc)
                return False
            self._written_since_checkpoint = 0
            return not busy

    def integrity_ok(self) -> bool:
        with self._lock:
            return bool(self._connection().execute("PRAGMA integrity_check").fetchone()[0] == "ok")

    def _connection(self) -> sqlite3.Connection:
        """The open connection, reopened after a fork closed it. Callers hold the lock."""
        if self._db is None:
            try:
                self._db, self._fast_append = open_spool_file(
                    self._path, max_bytes=self._max_bytes, durable=self._durable
                )
                self._windows = self._fast_append
            except SpoolCorruptError:
                raise
            except (OSError, sqlite3.Error) as exc:
                raise SpoolUnavailableError(f"cannot reopen the spool: {exc}") from exc
        return self._db

    # SQLite keeps per-process lock bookkeeping for every open file (os_unix.c's unixInodeInfo). A forked child
    # inherits it, so even a *new* connection in the child trusts locks it does not hold: "database is locked" at
    # best, corruption at worst. So no connection stays open across fork(): the parent closes it just before (under
    # the lock, so no transaction is cut) and reopens it on next use.
    def prepare_fork(self) -> None:
        if not self._lock.acquire(timeout=10):
            return  # a transaction stuck in a busy wait: fork without the guarantee rather than hang the app
        self._suspended = True
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None

    def after_fork_in_parent(self) -> None:
        if self._suspended:
            self._suspended = False
            self._lock.release()

    def close(self) -> None:
        with self._lock, contextlib.suppress(sqlite3.Error):
            if self._db is not None:
                self._db.close()
            self._db = None
