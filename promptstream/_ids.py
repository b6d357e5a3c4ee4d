"""Event ids (UUIDv7) and RFC 3339 timestamps, made cheaply in the caller's thread."""

from __future__ import annotations

import os
import random
import time
import uuid

__all__ = ["new_idempotency_key", "rfc3339_ms", "uuid7"]

# Our own generator, not the `random` module's: an application that calls random.seed(42) in every worker must not
# make two processes mint the same event ids. Reseeded in a forked child for the same reason (fork-safety state).
_rng = random.Random()
os.register_at_fork(after_in_child=_rng.seed)

_RAND_A_BITS = 12
_RAND_B_BITS = 62


def uuid7(unix_ms: int | None = None) -> str:
    """A UUIDv7 string (RFC 9562): 48-bit Unix milliseconds then 74 random bits, so ids sort by creation time."""
    if unix_ms is None:
        unix_ms = time.time_ns() // 1_000_000
    rand = _rng.getrandbits(_RAND_A_BITS + _RAND_B_BITS)
    value = (
        (unix_ms & 0xFFFF_FFFF_FFFF) << 80
        | 0x7 << 76
        | (rand >> _RAND_B_BITS) << 64
        | 0b10 << 62
        | (rand & ((1 << _RAND_B_BITS) - 1))
    )
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_second_cache: tuple[int, str] = (-1, "")


def rfc3339_ms(unix_ms: int) -> str:
    """``2026-11-27T10:57:25.123Z``; the per-second prefix is cached because strftime dominates otherwise."""
    global _second_cache  # a benign cache: a race only recomputes the same string
    seconds, millis = divmod(unix_ms, 1000)
    cached_second, prefix = _second_cache
    if cached_second != seconds:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _second_cache = (seconds, prefix)
    return f"{prefix}.{millis:03d}Z"


def new_idempotency_key() -> str:
    """A random key for one logical request; the same key is sent on every retry of it."""
    return str(uuid.uuid4())
