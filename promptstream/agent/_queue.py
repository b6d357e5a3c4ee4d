"""The in-memory queue between ``track_*`` and the spooler."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from typing import Generic, TypeVar

__all__ = ["ArrivalMeter", "EventQueue"]

T = TypeVar("T")


class EventQueue(Generic[T]):
    """A bounded FIFO whose ``put`` takes no lock: deque.append and len are atomic under the GIL, so a caller never
    waits for the spooler (or for anything the sender does). The bound is therefore approximate by at most one item
    per concurrently-putting thread. A full queue refuses new items (they are counted), keeping what it has."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._items: deque[T] = deque()
        self._drop_lock = threading.Lock()  # only the rare drop path counts under a lock, for an exact count
        self.dropped = 0
        self.taken = 0  # by the single consumer; exact

    def put(self, item: T) -> bool:
        if len(self._items) >= self.max_size:
            self.count_drop()
            return False
        self._items.append(item)
        return True

    def count_drop(self) -> None:
        """Count an item refused before it reached the queue (full, or its client closed)."""
        with self._drop_lock:
            self.dropped += 1

    def take(self, limit: int) -> list[T]:
        """Up to ``limit`` items, oldest first. One consumer at a time (the caller serialises)."""
        items: list[T] = []
        popleft = self._items.popleft
        try:
            for _ in range(limit):
                items.append(popleft())
        except IndexError:
            pass
        self.taken += len(items)
        return items

    def give_back(self, items: Sequence[T]) -> None:
        """Return items that could not be spooled to the front, in their order, to be tried again."""
        self._items.extendleft(reversed(items))
        self.taken -= len(items)

    def __len__(self) -> int:
        return len(self._items)

    @property
    def offered(self) -> int:
        """Every item ever put or refused: what the producers handed over, whatever became of it."""
        return self.taken + len(self._items) + self.dropped


class ArrivalMeter:
    """How fast items arrive, over windows of at least ``window`` seconds: shorter ones cannot tell a lull from a
    burst (a burst's queue runs dry for a moment whenever the consumer catches up)."""

    def __init__(self, window: float, *, now: float) -> None:
        self.window = window
        self._start = now
        self._offered_at_start = 0

    def rate(self, offered: int, now: float) -> float | None:
        """Items per second since the window began, starting a new window; None while it is too short."""
        elapsed = now - self._start
        if elapsed < self.window:
            return None
        rate = (offered - self._offered_at_start) / elapsed
        self._start, self._offered_at_start = now, offered
        return rate
