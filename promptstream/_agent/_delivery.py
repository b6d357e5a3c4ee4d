"""Spool -> server: claims batches, sends them, and acts on each outcome (acknowledge, split, dead-letter, back
off, pause). One deliverer at a time (the sender thread, or flush when no thread runs). A spool error on any of
these paths ends the round (the batch's lease lapses and it is taken over as it is); it never escapes."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable

from .._config import AgentConfig
from .._errors import EventRejectedError
from .._ids import rfc3339_ms
from .._retry import RetrySchedule
from ._queue import EventQueue
from ._reporting import Counters, Reporter
from ._sender import BatchSender, Delivered, Paused, Refused, Retry, checked_rejections
from ._spool import ClaimedBatch, Spool, SpoolCorruptError, SpoolUnavailableError
from ._spool_holder import SpoolHolder

__all__ = ["Delivery"]

_MAX_YIELD_TO_SPOOLER = 2.0  # seconds a round waits for a backed-up queue to reach the spool, at most
_SPOOL_ERRORS = (SpoolUnavailableError, SpoolCorruptError)


class Delivery:
    def __init__(
        self,
        config: AgentConfig,
        sender: BatchSender,
        holder: SpoolHolder,
        queue: EventQueue[bytes],
        *,
        counters: Counters,
        reporter: Reporter,
        stop: threading.Event,
        hurry: threading.Event,
        wake_spooler: Callable[[], None],
        progressed: Callable[[], None],
    ) -> None:
        self._config = config
        self._sender = sender
        self._holder = holder
        self._queue = queue
        self._counters = counters
        self._reporter = reporter
        self._stop = stop
        # Set by flush()/close(): ends a backoff the client chose (never a server's Retry-After), so a flush right
        # after the server comes back does not wait out a minute of backoff. One extra attempt per flush, no more.
        self._hurry = hurry
        self._wake_spooler = wake_spooler
        self._progressed = progressed
        self._lock = threading.Lock()
        self.paused_until = 0.0
        self._deliveries_since_compact = 0

    @property
    def paused(self) -> bool:
        return time.monotonic() < self.paused_until

    def deliver(self, deadline: float | None, max_batches: int | None = None) -> None:
        """Send batches until the spool has nothing unclaimed, delivery is paused, the deadline passes, or
        ``max_batches`` batches were claimed (the sender's wake-up for full batches: the rest waits for a drain)."""
        config = self._config
        with self._lock:
            yielded_until = time.monotonic() + _MAX_YIELD_TO_SPOOLER
            claimed = 0
            while not self._stop.is_set() or deadline is not None:
                if max_batches is not None and claimed >= max_batches:
                    return
                if self.paused:
                    return
                if deadline is not None and time.monotonic() >= deadline:
                    return
                if len(self._queue) > config.batch_max_events and time.monotonic() < yielded_until:
                    # Spool first: while a burst outruns the spooler, our transactions would hold the spool lock
                    # across GIL hand-offs and the queue would overflow. Bounded, so a producer that never lets
                    # up cannot starve delivery.
                    self._wake_spooler()
                    self._stop.wait(config.spool_interval)
                    continue
                try:
                    spool = self._holder.get()
                    batch = spool.claim(
                        config.batch_max_events, config.batch_max_bytes, rfc3339_ms(time.time_ns() // 1_000_000)
                    )
                except SpoolUnavailableError as exc:
                    self._reporter.note(f"spool unavailable: {exc}")
                    return
                except SpoolCorruptError as exc:
                    self._holder.replace_corrupt(spool, exc)
                    continue
                if batch is None:
                    self._compact_after_deliveries(spool)
                    return
                claimed += 1
                if not self._deliver_batch(spool, batch, deadline):
                    return
                if self._took_the_rest(batch):
                    # the claim found no more unclaimed events than these: another claim now would be a write
                    # transaction to learn that the spool is empty (what arrived since waits for the next round)
                    self._compact_after_deliveries(spool)
                    return

    def _took_the_rest(self, batch: ClaimedBatch) -> bool:
        """True when a fresh claim stopped short of both limits, so nothing was left unclaimed behind it. A taken-over
        batch (attempts > 0) says nothing about the rest; 64 KiB is more than any one event can be (16 KiB of
        metadata and ids of 256 characters), so a batch that far below the byte limit did not stop for bytes."""
        config = self._config
        return (
            batch.attempts == 0
            and len(batch.seqs) < config.batch_max_events
            and batch.size + 64 * 1024 <= config.batch_max_bytes
        )

    def _compact_after_deliveries(self, spool: Spool) -> None:
        if self._deliveries_since_compact:
            self._deliveries_since_compact = 0
            with contextlib.suppress(*_SPOOL_ERRORS):
                spool.compact_if_empty()

    def _deliver_batch(self, spool: Spool, first: ClaimedBatch, deadline: float | None) -> bool:
        """Deliver one claimed batch (and the halves it may be split into). False when delivery should stop."""
        todo = [first]
        try:
            return self._deliver_claimed(spool, todo, deadline)
        except Exception:
            self._release_all(spool, todo)  # an unexpected error: what we hold goes back at once, not in a lease
            raise

    def _deliver_claimed(self, spool: Spool, todo: list[ClaimedBatch], deadline: float | None) -> bool:
        config, counters, reporter = self._config, self._counters, self._reporter
        schedule = RetrySchedule(first=0.5, cap=config.max_backoff)
        attempted: set[str] = set()  # a batch's first attempt follows its claim or split at once: no renew needed
        while todo:
            batch = todo[0]
            try:
                if batch.batch_id in attempted and not spool.renew(batch):
                    todo.pop(0)  # another process took it over while we waited; it is theirs now
                    continue
            except _SPOOL_ERRORS as exc:
                reporter.note(f"spool unavailable: {exc}")
                return False
            attempted.add(batch.batch_id)
            started = time.monotonic()
            outcome = self._sender.send(batch)
            if isinstance(outcome, Delivered):
                counters.delivery_latency = time.monotonic() - started
                reporter.delivery_succeeded()
                if not self._acknowledge(spool, batch, outcome):
                    # given back: it goes out again with the same key, and the server answers "duplicate"
                    self._release_all(spool, todo)
                    return False
                todo.pop(0)
                schedule.reset()
            elif isinstance(outcome, Refused):
                try:
                    if len(batch.seqs) > 1:
                        todo[0:1] = spool.split(batch)
                    else:
                        spool.dead_letter(batch, str(outcome.error))
                        todo.pop(0)
                        counters.rejected += 1
                        reporter.report(outcome.error)
                except _SPOOL_ERRORS as exc:
                    # given back (or, if even that fails, its lease lapses): it goes out and is refused again on a
                    # later round, and split then. Nothing is lost.
                    reporter.note(f"spool unavailable while setting a refused batch aside: {exc}")
                    self._release_all(spool, todo)
                    return False
            elif isinstance(outcome, Paused):
                self._release_all(spool, todo)
                reporter.delivery_failed(outcome.error, paused_for=config.auth_pause)
                self.paused_until = time.monotonic() + config.auth_pause  # reported first: paused means reported
                return False
            else:
                assert isinstance(outcome, Retry)
                counters.retries += 1
                reporter.delivery_failed(outcome.error)
                delay = schedule.next_delay(outcome.retry_after)
                if deadline is not None and time.monotonic() + delay > deadline:
                    self._release_all(spool, todo)
                    return False
                waiter = self._stop if outcome.retry_after is not None else self._hurry
                waiter.wait(delay)
                self._hurry.clear()
                if self._stop.is_set() and deadline is None:
                    self._release_all(spool, todo)
                    return False
        return True

    def _acknowledge(self, spool: Spool, batch: ClaimedBatch, outcome: Delivered) -> bool:
        """Delete the delivered batch from the spool and count it. False when the spool cannot be written: the
        lease then lapses and the batch is resent with the same key, which the server dedups."""
        counters, reporter = self._counters, self._reporter
        rejected, duplicates, problem = checked_rejections(outcome, len(batch.seqs))
        for attempt in range(3):
            try:
                spool.ack(batch, rejected)
                break
            except _SPOOL_ERRORS as exc:
                reporter.note(f"could not acknowledge in spool: {exc}")
                if attempt == 2:
                    return False
                self._stop.wait(0.1)
        counters.sent += len(batch.seqs) - len(rejected)
        counters.duplicates += duplicates
        counters.rejected += len(rejected)
        self._deliveries_since_compact += 1
        if problem is not None:
            reporter.warn_once("malformed_answer", "%s", problem)
            reporter.report(problem)
        if rejected:
            reporter.report(EventRejectedError(rejected[0][1], count=len(rejected)))
        self._progressed()
        return True

    def _release_all(self, spool: Spool, batches: list[ClaimedBatch]) -> None:
        for batch in list(batches):
            with contextlib.suppress(Exception):  # else the lease lapses by itself
                spool.release(batch)
        batches.clear()
