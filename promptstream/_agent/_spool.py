"""The spool's interface: where accepted events wait until the server acknowledges them.

Life of an event: ``append`` gives it a ``seq``; ``claim`` puts the oldest unclaimed events into a *batch* whose id
is the request's Idempotency-Key and whose ``sent_at`` is fixed, and leases it to one process; ``ack`` deletes the
batch and its events after a 2xx (moving events the server rejected to the dead-letter table); ``split`` halves a
batch the server refused as a whole; ``release`` gives the lease back without sending. A batch whose lease expired,
or whose owner process is dead, is taken over *as it is* by the next claim, so its retry is byte-identical.

Two implementations: ``SqliteSpool`` in ``_sqlite_spool.py`` (a WAL-mode SQLite file shared safely by every process
of the same (base URL, API key) pair; all SQL lives there, and it is imported only when an agent opens its spool,
on a background thread, so ``import promptstream`` does not pay for sqlite3) and ``MemorySpool`` below (the same
semantics in memory, for ``spool=False`` or when the disk cannot be used).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from array import array
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol, overload

import msgspec

__all__ = [
    "MAX_DEAD_LETTERS",
    "AppendResult",
    "ClaimedBatch",
    "DeadLetter",
    "MemorySpool",
    "PayloadChunk",
    "Spool",
    "SpoolCorruptError",
    "SpoolCounts",
    "SpoolUnavailableError",
    "dead_letter_byte_cap",
    "owner_token",
]

# Dead letters (events the server refused) are kept for a person to read, replay or purge, not for ever: at most this
# many, and at most a fixed share of max_spool_bytes, the oldest pruned first and counted. They count against
# max_spool_bytes with the pending events, so a spool full of refusals still has its cap, never the disk's.
MAX_DEAD_LETTERS = 10_000
_DEAD_LETTER_SHARE = 8  # dead letters may use at most 1/8 of max_spool_bytes


def dead_letter_byte_cap(max_spool_bytes: int) -> int:
    """The bytes of payload dead letters may keep in a spool capped at ``max_spool_bytes``."""
    return max_spool_bytes // _DEAD_LETTER_SHARE


class AppendResult(msgspec.Struct, frozen=True):
    stored: int
    dropped: int  # refused because the spool is full (newest first: what is already spooled is kept)


class ClaimedBatch(msgspec.Struct, frozen=True):
    batch_id: str  # also the request's Idempotency-Key
    sent_at: str
    seqs: tuple[int, ...]
    payloads: tuple[bytes, ...]
    attempts: int  # earlier attempts at this batch, by any process

    @property
    def size(self) -> int:
        return sum(len(p) for p in self.payloads)


class PayloadChunk(Sequence[bytes]):
    """Encoded events on their way into a spool, joined into one buffer plus each one's length.

    One object instead of thousands: the spooler lets go of the individual payloads before the spool stores the
    chunk, so during the statement memory holds the chunk once (and SQLite's copy of it) rather than twice over
    (docs/benchmarks.md). It is a sequence of the payloads: indexing slices one back out.
    """

    __slots__ = ("blob", "lengths")

    def __init__(self, payloads: Iterable[bytes]) -> None:
        payloads = payloads if isinstance(payloads, (list, tuple)) else list(payloads)
        self.blob: bytes = b"".join(payloads)
        self.lengths: array[int] = array("I", map(len, payloads))

    def __len__(self) -> int:
        return len(self.lengths)

    @overload
    def __getitem__(self, index: int) -> bytes: ...
    @overload
    def __getitem__(self, index: slice) -> PayloadChunk: ...
    def __getitem__(self, index: int | slice) -> bytes | PayloadChunk:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return PayloadChunk(self[i] for i in range(start, stop, step))
            chunk = PayloadChunk(())
            if start < stop:  # a run of payloads is a run of the buffer: slice both, no per-payload copies
                offset = sum(self.lengths[:start])
                chunk.lengths = self.lengths[start:stop]
                chunk.blob = self.blob[offset : offset + sum(chunk.lengths)]
            return chunk
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("PayloadChunk index out of range")
        start = sum(self.lengths[:index])  # the spool only iterates and slices; indexing is the rare Sequence path
        return self.blob[start : start + self.lengths[index]]

    def __iter__(self) -> Iterator[bytes]:
        start = 0
        for length in self.lengths:
            yield self.blob[start : start + length]
            start += length


class SpoolCounts(msgspec.Struct, frozen=True):
    pending: int
    pending_bytes: int
    dead_lettered: int
    oldest_created_ms: int | None
    dead_letter_bytes: int = 0
    dead_letters_pruned: int = 0  # the oldest dead letters dropped to keep within the bounds, since the spool began


class DeadLetter(msgspec.Struct, frozen=True):
    """An event the server refused, with its reason, as ``promptstream spool dead-letters`` shows it."""

    seq: int
    created_ms: int  # when it was spooled
    dead_at_ms: int  # when the server refused it
    reason: str
    payload: bytes  # the event as it was sent (JSON)


class SpoolCorruptError(Exception):
    """The spool file is not a spool we can use (corrupt, foreign or newer); it is quarantined."""


class SpoolUnavailableError(Exception):
    """The spool cannot be used right now (locked, disk full or I/O error); the caller keeps its events."""


class Spool(Protocol):
    path: str | None

    def append(self, payloads: Sequence[bytes], created_ms: int) -> AppendResult: ...
    def claim(self, max_events: int, max_bytes: int, sent_at: str) -> ClaimedBatch | None: ...
    def renew(self, batch: ClaimedBatch) -> bool: ...
    def ack(self, batch: ClaimedBatch, rejected: Sequence[tuple[int, str]]) -> None: ...
    def split(self, batch: ClaimedBatch) -> list[ClaimedBatch]: ...
    def dead_letter(self, batch: ClaimedBatch, reason: str) -> None: ...
    def release(self, batch: ClaimedBatch) -> None: ...
    def has_pending_through(self, seq: int) -> bool: ...
    def last_seq(self) -> int: ...
    def counts(self) -> SpoolCounts: ...
    def dead_letters(self, limit: int | None = None) -> list[DeadLetter]: ...
    def replay_dead_letters(self) -> int: ...
    def purge_dead_letters(self) -> int: ...
    def compact_if_empty(self) -> None: ...
    def checkpoint_if_due(self) -> bool: ...
    def prepare_fork(self) -> None: ...
    def after_fork_in_parent(self) -> None: ...
    def close(self) -> None: ...


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def owner_token() -> str:
    """Identifies one agent in one process: ``<pid>:<random>``. The pid lets others see when the owner died."""
    return f"{os.getpid()}:{uuid.uuid4().hex[:12]}"


class MemorySpool:
    """The spool's semantics without a disk: for ``spool=False`` and as the fallback when the disk fails. Events
    here survive network outages but not the process. Bounded by the same byte cap."""

    path: str | None = None

    def __init__(self, *, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        self._unclaimed: deque[tuple[int, int, bytes]] = deque()  # (seq, created_ms, payload)
        self._batches: dict[str, ClaimedBatch] = {}  # claimed, not yet acknowledged
        self._created: dict[int, int] = {}
        self._dead: deque[DeadLetter] = deque()
        self._dead_bytes = 0
        self._dead_pruned = 0
        self._next_seq = 1
        self._bytes = 0

    def append(self, payloads: Sequence[bytes], created_ms: int) -> AppendResult:
        with self._lock:
            stored = 0
            for payload in payloads:
                if self._bytes + self._dead_bytes + len(payload) > self._max_bytes:
                    break
                self._unclaimed.append((self._next_seq, created_ms, payload))
                self._created[self._next_seq] = created_ms
                self._next_seq += 1
                self._bytes += len(payload)
                stored += 1
            return AppendResult(stored, len(payloads) - stored)

    def claim(self, max_events: int, max_bytes: int, sent_at: str) -> ClaimedBatch | None:
        with self._lock:
            if not self._unclaimed:
                return None
            chosen: list[tuple[int, int, bytes]] = []
            total = 0
            while self._unclaimed and len(chosen) < max_events:
                size = len(self._unclaimed[0][2])
                if chosen and total + size > max_bytes:
                    break
                chosen.append(self._unclaimed.popleft())
                total += size
            batch = ClaimedBatch(
                str(uuid.uuid4()), sent_at, tuple(c[0] for c in chosen), tuple(c[2] for c in chosen), 0
            )
            self._batches[batch.batch_id] = batch
            return batch

    def renew(self, batch: ClaimedBatch) -> bool:
        with self._lock:
            return batch.batch_id in self._batches

    def _forget(self, batch: ClaimedBatch) -> None:
        if self._batches.pop(batch.batch_id, None) is not None:
            self._bytes -= batch.size
            for seq in batch.seqs:
                self._created.pop(seq, None)

    def ack(self, batch: ClaimedBatch, rejected: Sequence[tuple[int, str]]) -> None:
        with self._lock:
            if batch.batch_id not in self._batches:
                return
            refused = {index: reason for index, reason in rejected if 0 <= index < len(batch.seqs)}
            self._bury(batch, refused)

    def dead_letter(self, batch: ClaimedBatch, reason: str) -> None:
        with self._lock:
            if batch.batch_id in self._batches:
                self._bury(batch, dict.fromkeys(range(len(batch.seqs)), reason))

    def _bury(self, batch: ClaimedBatch, refused: dict[int, str]) -> None:
        """Forget the batch first, then keep its refused events as dead letters within the bounds."""
        created = {seq: self._created.get(seq, 0) for seq in batch.seqs}
        self._forget(batch)
        now = _now_ms()
        for index, reason in sorted(refused.items()):
            seq = batch.seqs[index]
            self._dead.append(DeadLetter(seq, created[seq], now, reason, batch.payloads[index]))
            self._dead_bytes += len(batch.payloads[index])
        byte_cap = dead_letter_byte_cap(self._max_bytes)
        while self._dead and (len(self._dead) > MAX_DEAD_LETTERS or self._dead_bytes > byte_cap):
            self._dead_bytes -= len(self._dead.popleft().payload)
            self._dead_pruned += 1

    def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        with self._lock:
            return list(self._dead)[: limit if limit is not None else len(self._dead)]

    def replay_dead_letters(self) -> int:
        """Put every dead letter back at the end of the queue, as new events (the server dedups by event_id)."""
        with self._lock:
            count = len(self._dead)
            while self._dead:
                letter = self._dead.popleft()
                self._unclaimed.append((self._next_seq, letter.created_ms, letter.payload))
                self._created[self._next_seq] = letter.created_ms
                self._next_seq += 1
                self._bytes += len(letter.payload)
            self._dead_bytes = 0
            return count

    def purge_dead_letters(self) -> int:
        with self._lock:
            count = len(self._dead)
            self._dead.clear()
            self._dead_bytes = 0
            return count

    def split(self, batch: ClaimedBatch) -> list[ClaimedBatch]:
        half = max(1, len(batch.seqs) // 2)
        with self._lock:
            self._batches.pop(batch.batch_id, None)
            parts = []
            for seqs, payloads in (
                (batch.seqs[:half], batch.payloads[:half]),
                (batch.seqs[half:], batch.payloads[half:]),
            ):
                if seqs:
                    part = ClaimedBatch(str(uuid.uuid4()), batch.sent_at, seqs, payloads, 0)
                    self._batches[part.batch_id] = part
                    parts.append(part)
            return parts

    def release(self, batch: ClaimedBatch) -> None:
        """Memory has no other process to hand the batch to: put its events back at the front, in order."""
        with self._lock:
            if self._batches.pop(batch.batch_id, None) is not None:
                for seq, payload in reversed(list(zip(batch.seqs, batch.payloads, strict=True))):
                    self._unclaimed.appendleft((seq, self._created.get(seq, 0), payload))

    def has_pending_through(self, seq: int) -> bool:
        with self._lock:
            return bool(self._created) and min(self._created) <= seq

    def last_seq(self) -> int:
        with self._lock:
            return max(self._created, default=0)

    def counts(self) -> SpoolCounts:
        with self._lock:
            oldest = min(self._created.values()) if self._created else None
            return SpoolCounts(
                len(self._created), self._bytes, len(self._dead), oldest, self._dead_bytes, self._dead_pruned
            )

    def compact_if_empty(self) -> None:
        return None

    def checkpoint_if_due(self) -> bool:
        return False

    def prepare_fork(self) -> None:
        return None

    def after_fork_in_parent(self) -> None:
        return None

    def close(self) -> None:
        return None
