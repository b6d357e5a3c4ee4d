"""The tracking agent: ``track_*`` -> in-memory queue -> SQLite WAL spool -> batched, idempotent delivery.

- ``_queue.py``: the bounded in-memory queue the callers append to.
- ``_spool.py``: the spool's interface and its in-memory implementation.
- ``_sqlite_spool.py``: the durable spool, a SQLite WAL file (all SQL). Imported when an agent opens its spool, not
  by ``import promptstream``: sqlite3 alone would be a fifth of the package's import time.
- ``_sender.py``: one batch -> one HTTP request -> an outcome.
- ``_agent.py``: the object that wires them, owns the threads, and handles flush, close, fork and exit.

docs/delivery.md states the guarantees.
"""

from typing import TYPE_CHECKING, Any

from ._agent import DEFAULT_FLUSH_TIMEOUT, TrackingAgent, spool_file_path
from ._queue import ArrivalMeter, EventQueue
from ._sender import BatchSender, Delivered, Outcome, Paused, Refused, Retry
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
    "delete_spool",
    "owner_token",
    "spool_file_path",
]


def __getattr__(name: str) -> Any:
    """``SqliteSpool`` and ``delete_spool`` on first use (the CLI, tests), so that importing the agent skips sqlite3."""
    if name in ("SqliteSpool", "delete_spool"):
        from . import _sqlite_spool

        return getattr(_sqlite_spool, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
