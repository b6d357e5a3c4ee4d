"""Rate limits per API key (``serve --rate-limit R``): a token bucket of ``R`` requests per second, bursts up to
``max(R, 1)``. Where the bucket lives decides what "per key" means:

- ``RateLimiter``: in this process's memory. Used on SQLite, which one process serves, so the limit is the server's.
- ``SharedRateLimiter``: one row per key in the database (``PgStore.take_rate_token``), refilled and taken by one
  atomic statement on the database's clock, so every worker and every instance on that database draws from the same
  bucket: R per second for the whole deployment, not R per process. It costs one short statement per request, run
  on a worker thread (never on the event loop).

Example:
    ```python
    limiter = rate_limiter_for(store, 50.0)
    wait = limiter.wait_needed("key-digest")  # 0.0: go; else seconds until a token is free (429, Retry-After)
    ```
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


def bucket_size(rate: float) -> float:
    """The burst a rate allows: one second's worth, and at least one request (a rate below 1/s still lets one in).

    Example:
        ```python
        assert bucket_size(0.5) == 1.0 and bucket_size(20.0) == 20.0
        ```
    """
    return max(1.0, rate)


class RateLimiter:
    """Token bucket per key in this process: ``rate`` requests per second, bursts up to ``bucket_size(rate)``.

    Example:
        ```python
        limiter = RateLimiter(5.0)
        assert limiter.wait_needed("k") == 0.0
        ```
    """

    shared = False  # answered from memory: cheap enough for the event loop

    def __init__(self, rate: float) -> None:
        if not rate > 0:
            raise ValueError(f"a rate limit must be a positive number of requests per second, not {rate!r}")
        self.rate = rate
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def wait_needed(self, key: str) -> float:
        """0 when the request may go now (and it is counted), else the seconds until a token is free."""
        size = bucket_size(self.rate)
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (size, now))
            tokens = min(size, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate


class SharedRateLimiter:
    """Token bucket per key kept by the storage, shared by every process on it; ``take(key, rate)`` answers as
    ``RateLimiter.wait_needed`` does.

    Example:
        ```python
        # doc: no-run: needs a PostgreSQL server
        limiter = SharedRateLimiter(pg_store.take_rate_token, 50.0)
        ```
    """

    shared = True  # a database round trip: the server calls it on a worker thread

    def __init__(self, take: Callable[[str, float], float], rate: float) -> None:
        if not rate > 0:
            raise ValueError(f"a rate limit must be a positive number of requests per second, not {rate!r}")
        self.rate = rate
        self._take = take

    def wait_needed(self, key: str) -> float:
        """0 when the request may go now (and it is counted everywhere), else the seconds until a token is free."""
        return self._take(key, self.rate)


def rate_limiter_for(store: Any, rate: float) -> RateLimiter | SharedRateLimiter:
    """The limiter for a store: shared where the store can keep buckets for every process (PostgreSQL), else
    in-process (SQLite, served by one process).

    Example:
        ```python
        limiter = rate_limiter_for(Store(":memory:"), 10.0)  # a RateLimiter
        ```
    """
    take = getattr(store, "take_rate_token", None)
    return SharedRateLimiter(take, rate) if callable(take) else RateLimiter(rate)
