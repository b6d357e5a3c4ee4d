"""The seam between the client and whatever takes its events: ``track_*`` hand each validated event, encoded as
JSON bytes, to an ``EventSink``. The tracking agent is the production sink; ``promptstream.testing``'s recorder is
another. A client is given one with ``PromptStreamClient(event_sink=...)``."""

from __future__ import annotations

from typing import Protocol

from .._models import DeliveryStats

__all__ = ["EventSink"]


class EventSink(Protocol):
    """Where ``track_*`` put events. ``enqueue`` is on the caller's fast path: no I/O, no lock held during I/O,
    never raises. ``flush``, ``close`` and ``stats`` back the client's methods of the same names."""

    def enqueue(self, event: bytes) -> None: ...
    def flush(self, timeout: float | None = None) -> bool: ...
    def close(self, timeout: float | None = None) -> bool: ...
    def stats(self) -> DeliveryStats: ...
