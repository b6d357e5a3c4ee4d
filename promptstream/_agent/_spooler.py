"""Queue -> spool: moves what ``track_*`` queued into the spool in large transactions, running ``before_send`` on
the way, and checkpoints the WAL between bursts. One mover at a time (the spooler thread, or flush/close inline)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .._config import AgentConfig
from .._errors import PromptStreamError
from .._privacy import BeforeSend, apply_before_send
from ._queue import ArrivalMeter, EventQueue
from ._reporting import Counters, Reporter
from ._spool import PayloadChunk, SpoolCorruptError, SpoolUnavailableError
from ._spool_holder import SpoolHolder

__all__ = ["Spooler"]

# Events per spool write. Large, because each statement costs the spooler a GIL hand-off while the application is
# busy (docs/delivery.md has the measured figures).
SPOOL_CHUNK = 20_000
# Below this rate of arrivals a checkpoint's pause (tens of ms) queues a few thousand events at most; above it, a
# burst is on. The rate is measured over at least _RATE_WINDOW seconds (see ArrivalMeter).
_CHECKPOINT_BELOW_EVENTS_PER_S = 100_000
_RATE_WINDOW = 0.05


class Spooler:
    def __init__(
        self,
        config: AgentConfig,
        queue: EventQueue[bytes],
        holder: SpoolHolder,
        *,
        counters: Counters,
        reporter: Reporter,
        before_send: BeforeSend | None,
        spooled: Callable[[int], None],
    ) -> None:
        self._config = config
        self._queue = queue
        self._holder = holder
        self._counters = counters
        self._reporter = reporter
        self._before_send = before_send
        self._spooled = spooled  # told how many events each chunk stored
        self._lock = threading.Lock()
        self._arrivals = ArrivalMeter(_RATE_WINDOW, now=time.monotonic())

    def spool_queued(self) -> None:
        """Move everything queued into the spool, in large transactions. Events the spool refuses (unavailable)
        go back to the front of the queue, to be tried again."""
        counters, reporter = self._counters, self._reporter
        with self._lock:
            while True:
                events = self._queue.take(SPOOL_CHUNK)
                if not events:
                    self._checkpoint_unless_in_a_burst()
                    return
                if self._before_send is not None:
                    events = self._run_before_send(events)
                    if not events:
                        continue
                # Joined now, and the payloads let go of, so that while SQLite stores the chunk (the longest step,
                # and the one a burst keeps queueing through) memory holds it once, not twice.
                chunk = PayloadChunk(events)
                del events
                try:
                    spool = self._holder.get()
                    result = spool.append(chunk, time.time_ns() // 1_000_000)
                except SpoolUnavailableError as exc:
                    self._queue.give_back(list(chunk))
                    reporter.note(f"spool unavailable: {exc}")
                    reporter.warn_once("spool_unavailable", "spool unavailable (%s); events wait in memory", exc)
                    return
                except SpoolCorruptError as exc:
                    self._queue.give_back(list(chunk))
                    self._holder.replace_corrupt(spool, exc)
                    continue
                reporter.episode_over("spool_unavailable")
                counters.spooled += result.stored
                if result.dropped:
                    counters.spool_dropped += result.dropped
                    reporter.note("spool is full")
                    reporter.warn_once(
                        "spool_full",
                        "spool is full (max_spool_bytes=%d); newest events are dropped",
                        self._config.max_spool_bytes,
                    )
                else:
                    reporter.episode_over("spool_full")
                self._spooled(result.stored)

    def _checkpoint_unless_in_a_burst(self) -> None:
        """Run the WAL checkpoint that is due if events arrive slowly enough that the queue cannot pile up behind
        it: it blocks the spooler for tens of ms per 16 MiB, so during a burst it waits for the burst's end (a
        checkpoint inside a burst let the queue fill to its cap; docs/delivery.md)."""
        rate = self._arrivals.rate(self._queue.offered, time.monotonic())
        spool = self._holder.current
        if rate is not None and rate < _CHECKPOINT_BELOW_EVENTS_PER_S and spool is not None:
            try:
                spool.checkpoint_if_due()
            except (SpoolUnavailableError, SpoolCorruptError) as exc:
                self._reporter.note(f"spool checkpoint failed: {exc}")

    def _run_before_send(self, payloads: list[bytes]) -> list[bytes]:
        """The user's hook on each event, here on the spooler thread; see _privacy.py for the rules."""
        assert self._before_send is not None
        outcome = apply_before_send(self._before_send, payloads)
        self._counters.filtered += outcome.filtered
        for error in outcome.errors:
            self._counters.hook_errors += 1
            self._reporter.warn_once("before_send", "%s; the event was dropped", error)
            self._reporter.report(PromptStreamError(error))
        return outcome.kept
