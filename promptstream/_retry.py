"""When to try again: one policy for ``run_prompt`` and for the background sender.

Delays come from ``backoff``'s exponential generator with full jitter (AWS's recommendation: retries from many
clients spread out instead of arriving in waves), capped; a server's ``Retry-After`` is a floor, never shortened.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Iterator

__all__ = ["RetrySchedule", "parse_retry_after"]


class RetrySchedule:
    """The delays between attempts of one operation (one run, or one batch). Not thread-safe; one per operation."""

    def __init__(self, *, first: float = 0.5, cap: float = 30.0) -> None:
        self._first = first
        self._cap = cap
        self.attempts = 0
        self._delays: Iterator[float] = self._new_generator()

    def _new_generator(self) -> Iterator[float]:
        import backoff  # lazily: it imports asyncio (9 ms), a third of what `import promptstream` would cost

        generator: Iterator[float] = backoff.expo(base=2, factor=self._first, max_value=self._cap)
        next(generator)  # backoff's generators are primed with one send(None) before the first value
        return generator

    def next_delay(self, retry_after: float | None = None) -> float:
        """Seconds to wait before the next attempt; at least ``retry_after`` when the server asked for it."""
        import backoff

        self.attempts += 1
        delay: float = backoff.full_jitter(next(self._delays))
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay

    def reset(self) -> None:
        self.attempts = 0
        self._delays = self._new_generator()


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)
