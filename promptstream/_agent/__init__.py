"""The tracking agent: ``track_*`` -> in-memory queue -> SQLite WAL spool -> batched, idempotent delivery.

- ``_queue.py``: the bounded in-memory queue the callers append to.
- ``_spool.py``: the spool's interface and its in-memory implementation.
- ``_sqlite_spool.py``: the durable spool, a SQLite WAL file (its transactions; ``_sqlite_open.py`` opens the file,
  ``_sqlite_schema.py``, ``_sqlite_dead_letters.py`` and ``_sqlite_files.py`` hold the rest of its SQL). Imported
  when an agent opens its spool, not by ``import promptstream``: sqlite3 alone would be a fifth of the package's
  import time.
- ``_spool_holder.py``: the spool one agent uses: opened on first use, replaced when corrupt, memory-only when the
  disk cannot be used, never reopened after close.
- ``_location.py``: where a client's spool file lives.
- ``_spooler.py``: queue -> spool (and ``before_send`` on the way).
- ``_sender.py``: one batch -> one HTTP request -> an outcome; the one table from HTTP answers to actions and errors.
- ``_delivery.py``: spool -> server: claim, send, acknowledge, split, dead-letter, back off, pause.
- ``_reporting.py``: the counters (one owner per field), warn-once logging, ``on_error`` and delivery episodes.
- ``_sink.py``: ``EventSink``, the seam where ``track_*`` hand their events (the agent is one sink).
- ``_agent.py``: ``TrackingAgent``, the object that wires them, owns the threads, and handles flush, close, fork
  and exit.

docs/delivery.md states the guarantees.
"""

from typing import TYPE_CHECKING, Any

from ._agent import DEFAULT_FLUSH_TIMEOUT, TrackingAgent
from ._location import legacy_spool_file_path, spool_file_path
from ._queue import ArrivalMeter, EventQueue
from ._sender import BatchSender, Delivered, Outcome, Paused, Refused, Retry, checked_rejections, outcome_for_status
from ._sink import EventSink
from ._spool import (
    AppendResult,
    ClaimedBatch,
    MemorySpool,
    PayloadChunk,
    Spool,
    SpoolCorruptError,
    SpoolCounts,
    SpoolUnavailableError,
    owner_token,
)

if TYPE_CHECKING:
    from ._sqlite_spool import SqliteSpool, delete_spool

__all__ = [
    "DEFAULT_FLUSH_TIMEOUT",
    "AppendResult",
    "ArrivalMeter",
    "BatchSender",
    "ClaimedBatch",
    "Delivered",
    "EventQueue",
    "EventSink",
    "MemorySpool",
    "Outcome",
    "Paused",
    "PayloadChunk",
    "Refused",
    "Retry",
    "Spool",
    "SpoolCorruptError",
    "SpoolCounts",
    "SpoolUnavailableError",
    "SqliteSpool",
    "TrackingAgent",
    "checked_rejections",
    "delete_spool",
    "legacy_spool_file_path",
    "outcome_for_status",
    "owner_token",
    "spool_file_path",
]


def __getattr__(name: str) -> Any:
    """``SqliteSpool`` and ``delete_spool`` on first use (the CLI, tests), so that importing the agent skips sqlite3."""
    if name in ("SqliteSpool", "delete_spool"):
        from . import _sqlite_spool

        return getattr(_sqlite_spool, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
