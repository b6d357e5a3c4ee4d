"""The in-memory queue between ``track_*`` and the spooler."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["ArrivalMeter", "EventQueue"]

T = TypeVar("T")


class EventQueue(Generic[T]):
    """A bounded FIFO whose ``put`` takes no lock below its high-water mark: deque.append and len are atomic under
    the GIL, so a caller never waits for the spooler (or for anything the sender does). The bound is therefore
    approximate by at most one item per concurrently-putting thread.

    When a put finds the queue full, the caller does bounded work instead of losing the event, as Vector's
    ``when_full: block`` does: it wakes the consumer (``on_full``) and sleeps in short steps, giving the consumer
    the GIL, until there is room, for at most ``max_wait`` seconds (counted in ``waits``). A tight loop that
    outruns the spooler is thus slowed to the spooler's pace rather than dropping. Only a consumer that makes no
    room within ``max_wait`` (the spool refuses writes, or no thread runs) gets items dropped (counted), and then
    without further waits until the queue has room again, so a stalled consumer never slows every call.
    """

    def __init__(self, max_size: int, *, max_wait: float = 0.0, on_full: Callable[[], None] | None = None) -> None:
        self.max_size = max_size
        self.max_wait = max_wait
        self._on_full = on_full
        self._items: deque[T] = deque()
        self._slow_lock = threading.Lock()  # only the rare full-queue path counts under a lock, for exact counts
        # ``taken`` when a wait last found no room: until the consumer has taken more for good (give_back undoes a
        # take), the consumer is stalled and a full queue drops at once
        self._stalled_at: int | None = None
        self.dropped: int = 0
        self.waits: int = 0  # puts that found the queue full and waited for room
        self.taken: int = 0  # by the single consumer; exact

    def put(self, item: T) -> bool:
        items = self._items
        if len(items) < self.max_size:
            items.append(item)
            return True
        return self._put_when_full(item)

    def _put_when_full(self, item: T) -> bool:
        items = self._items
        if self._stalled_at == self.taken or self.max_wait <= 0:
            self.count_drop()
            return False
        with self._slow_lock:
            self.waits += 1
        if self._on_full is not None:
            self._on_full()
        deadline = time.monotonic() + self.max_wait
        pause = 0.0001
        while len(items) >= self.max_size:
            if time.monotonic() >= deadline:
                self._stalled_at = self.taken
                self.count_drop()
                return False
            time.sleep(pause)  # releases the GIL: the spooler runs
            pause = min(pause * 2, 0.005)
        items.append(item)
        return True

    def count_drop(self) -> None:
        """Count an item refused before it reached the queue (full, or its client closed)."""
        with self._slow_lock:
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
