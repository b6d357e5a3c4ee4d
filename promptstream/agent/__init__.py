"""The tracking agent: ``track_*`` -> in-memory queue -> SQLite WAL spool -> batched, idempotent delivery.

- ``_queue.py``: the bounded in-memory queue the callers append to.
- ``_spool.py``: the durable spool (all SQL) and its in-memory twin.
- ``_sender.py``: one batch -> one HTTP request -> an outcome.
- ``_agent.py``: the object that wires them, owns the threads, and handles flush, close, fork and exit.

docs/delivery.md states the guarantees.
"""

from ._agent import DEFAULT_FLUSH_TIMEOUT, TrackingAgent, spool_file_path
from ._queue import EventQueue
from ._sender import BatchSender, Delivered, Outcome, Paused, Refused, Retry
from ._spool import (
    AppendResult,
    ClaimedBatch,
    MemorySpool,
    Spool,
    SpoolCorruptError,
    SpoolCounts,
    SpoolUnavailableError,
    SqliteSpool,
    delete_spool,
    owner_token,
)

__all__ = [
    "DEFAULT_FLUSH_TIMEOUT",
    "AppendResult",
    "BatchSender",
    "ClaimedBatch",
    "Delivered",
    "EventQueue",
    "MemorySpool",
    "Outcome",
    "Paused",
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
