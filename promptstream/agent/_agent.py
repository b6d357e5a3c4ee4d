"""The tracking agent: wires the queue, the spool and the sender together and owns their threads.

Two threads, because the two jobs must not wait for each other:
- ``promptstream-spooler`` moves the in-memory queue into the spool every ``spool_interval`` (50 ms), so a crash
  loses at most that window. It must keep doing so while a request is in flight or backing off for a minute.
- ``promptstream-sender`` claims batches from the spool, POSTs them and acknowledges them, backing off on failure.
Callers of ``track_*`` only append to the queue: they never take a lock either thread holds during I/O.

Fork: a child never uses (or closes) the parent's SQLite connection, HTTP client, queue or threads; it starts
fresh ones on first use. Exit: an atexit hook spools what is in memory and gives delivery ``shutdown_timeout``;
that path needs no new thread (Python 3.12+ cannot start one during shutdown).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .._config import AgentConfig
from .._errors import AuthenticationError, BadRequestError, PromptStreamError
from .._forksafety import ForkRegistry, import_in_background
from .._http import MODULES_FOR_FIRST_REQUEST, HttpTransport
from .._ids import rfc3339_ms
from .._models import DeliveryStats
from .._privacy import BeforeSend, apply_before_send
from .._retry import RetrySchedule
from . import _location
from ._queue import ArrivalMeter, EventQueue
from ._sender import BatchSender, Delivered, Paused, Refused, Retry
from ._spool import (
    ClaimedBatch,
    MemorySpool,
    PayloadChunk,
    Spool,
    SpoolCorruptError,
    SpoolUnavailableError,
    owner_token,
)

__all__ = ["DEFAULT_FLUSH_TIMEOUT", "TrackingAgent", "spool_file_path"]

logger = logging.getLogger("promptstream")

DEFAULT_FLUSH_TIMEOUT = 10.0
# Events per spool write. Large, because each statement costs the spooler a GIL hand-off (~5 ms while the application
# is busy): 20,000 events are one statement of a few MB, 21-30 ms of SQLite work (docs/delivery.md).
_SPOOL_CHUNK = 20_000
# Below this rate of arrivals a checkpoint's pause (tens of ms) queues a few thousand events at most; above it, a
# burst is on. The rate is measured over at least _RATE_WINDOW seconds (see ArrivalMeter).
_CHECKPOINT_BELOW_EVENTS_PER_S = 100_000
_RATE_WINDOW = 0.05
_MAX_YIELD_TO_SPOOLER = 2.0  # seconds a sender round waits for a backed-up queue to reach the spool, at most

ErrorCallback = Callable[[PromptStreamError], None]


def spool_file_path(config: AgentConfig, base_url: str, api_key: str) -> Path:
    return _location.spool_file_path(config, base_url, api_key)  # the spool's location lives in _location.py


class TrackingAgent:
    def __init__(
        self,
        config: AgentConfig,
        transport: HttpTransport,
        *,
        spool_path: Path,
        on_error: ErrorCallback | None = None,
        before_send: BeforeSend | None = None,
    ) -> None:
        self._config = config
        self._transport = transport
        self._spool_path = spool_path
        self._on_error = on_error
        self._before_send = before_send
        self._sender = BatchSender(transport, encoding=config.encoding, gzip_threshold=config.gzip_threshold_bytes)
        # A parent's spool objects, kept referenced so the GC never closes them in the child: normally their connection
        # was closed before the fork, but not if prepare_fork() could not take the spool lock in time.
        self._inherited: list[object] = []
        self._closed = False
        self._reset_process_state()
        _live_agents.add(self)
        # Started now, not on the first event: a process that only opens the spool (a desktop tool on its next start)
        # must deliver the backlog it finds. Starting threads is no I/O; they open the spool in the background.
        self._start()

    def _reset_process_state(self) -> None:
        """Everything that belongs to one process. Called at construction and in a forked child."""
        self._pid = os.getpid()
        self._owner = owner_token()
        # Events arrive encoded (JSON bytes): encoded once, in the caller, and smaller in memory than the struct.
        self._queue: EventQueue[bytes] = EventQueue(self._config.max_queue_size)
        self._spool: Spool | None = None
        self._spool_open_lock = threading.Lock()
        self._spooling_lock = threading.Lock()  # one mover of queue -> spool at a time (spooler thread or flush)
        self._delivery_lock = threading.Lock()  # one deliverer at a time (sender thread, or flush when no thread)
        self._start_lock = threading.Lock()
        self._progress = threading.Condition(threading.Lock())
        self._stop = threading.Event()
        self._spooler_wake = threading.Event()
        self._sender_wake = threading.Event()
        # Set by flush()/close(): ends a backoff the client chose (never a server's Retry-After), so a flush right
        # after the server comes back does not wait out a minute of backoff. One extra attempt per flush, no more.
        self._hurry = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started = False
        self._spooled = 0
        self._filtered = 0
        self._hook_errors = 0
        self._spool_dropped = 0
        self._sent = 0
        self._duplicates = 0
        self._rejected = 0
        self._retries = 0
        self._quarantined = 0
        self._paused_until = 0.0
        self._last_error: str | None = None
        self._warned: set[str] = set()
        self._deliveries_since_compact = 0
        self._arrivals = ArrivalMeter(_RATE_WINDOW, now=time.monotonic())

    # -- the hot path ---------------------------------------------------------------------------------------------

    def enqueue(self, event: bytes) -> None:
        if self._closed:
            self._drop_after_close()
            return
        if not self._queue.put(event):
            self._warn_once(
                "queue_full",
                "in-memory queue is full (%d events); new events are being dropped",
                self._config.max_queue_size,
            )
        if not self._started:
            self._start()

    def _drop_after_close(self) -> None:
        self._queue.count_drop()
        self._warn_once("closed", "track_* called on a closed client; the event was dropped")

    # -- threads --------------------------------------------------------------------------------------------------

    def _start(self) -> None:
        with self._start_lock:
            if self._started or self._closed:
                return
            self._started = True
            _warn_if_uwsgi_without_threads()
            for name, target in (
                ("promptstream-spooler", self._spooler_loop),
                ("promptstream-sender", self._sender_loop),
            ):
                thread = threading.Thread(target=target, name=name, daemon=True)
                try:
                    thread.start()
                except RuntimeError as exc:
                    # interpreter shutdown: flush()/the atexit hook spool and deliver inline instead
                    logger.debug("promptstream: cannot start %s: %s", name, exc)
                    continue
                self._threads.append(thread)

    def _threads_alive(self) -> bool:
        return len(self._threads) == 2 and all(t.is_alive() for t in self._threads)

    def _spooler_loop(self) -> None:
        # Open the spool now, not when the first events are due: opening takes a dozen statements, each a GIL
        # hand-off that a busy application thread makes slow, and a burst right after start-up must not wait on it.
        self._guarded(self._get_spool)
        while not self._stop.is_set():
            self._spooler_wake.wait(self._config.spool_interval)
            self._spooler_wake.clear()
            self._guarded(self._spool_queued)
        self._guarded(self._spool_queued)

    def _sender_loop(self) -> None:
        self._guarded(import_in_background, *MODULES_FOR_FIRST_REQUEST, "backoff")
        while not self._stop.is_set():
            self._sender_wake.wait(self._config.flush_interval)
            self._sender_wake.clear()
            self._guarded(self._deliver, None)

    def _guarded(self, step: Callable[..., object], *args: object) -> None:
        """A background step never dies of an unexpected error: it is logged, reported, and tried again later."""
        try:
            step(*args)
        except Exception as exc:
            self._last_error = f"{type(exc).__name__}: {exc}"
            logger.exception("promptstream: unexpected error in the tracking agent")
            self._stop.wait(1.0)

    # -- queue -> spool ---------------------------------------------------------------------------------------------

    def _get_spool(self) -> Spool:
        spool = self._spool
        if spool is not None:
            return spool
        with self._spool_open_lock:
            if self._spool is None:
                self._spool = self._open_spool()
            return self._spool

    def _open_spool(self) -> Spool:
        config = self._config
        if not config.spool:
            return MemorySpool(max_bytes=config.max_spool_bytes)
        # Imported only now, and on our thread under the fork lock (see _forksafety): `import promptstream` skips
        # sqlite3, and a fork() cannot land inside this first import.
        try:
            import_in_background("promptstream.agent._sqlite_spool")
        except ImportError as exc:  # a Python built without sqlite3 (some slim container images)
            return self._memory_only(f"sqlite3 is unavailable ({exc})")
        import sqlite3

        from ._sqlite_spool import SqliteSpool

        try:
            spool = SqliteSpool(
                self._spool_path,
                owner=self._owner,
                max_bytes=config.max_spool_bytes,
                lease_seconds=config.lease_seconds,
                durable=config.durable,
            )
        except (OSError, sqlite3.Error, SpoolUnavailableError, SpoolCorruptError) as exc:
            return self._memory_only(f"spool at {self._spool_path} is unusable ({exc})")
        if spool.quarantined:
            self._quarantined += len(spool.quarantined)
            self._report(PromptStreamError(f"corrupt spool moved aside: {spool.quarantined[-1]}"))
        return spool

    def _memory_only(self, reason: str) -> Spool:
        message = f"{reason}; events are kept in memory only"
        logger.warning("promptstream: %s", message)
        self._report(PromptStreamError(message))
        return MemorySpool(max_bytes=self._config.max_spool_bytes)

    def _replace_corrupt_spool(self, spool: Spool, exc: Exception) -> None:
        with self._spool_open_lock:
            if self._spool is not spool:
                return
            logger.warning("promptstream: spool failed (%s); moving it aside and starting a new one", exc)
            spool.close()
            if spool.path is not None:
                from ._sqlite_spool import quarantine_spool  # only a SqliteSpool has a path: already imported

                quarantine_spool(Path(spool.path))
            self._quarantined += 1
            self._spool = self._open_spool()
        self._report(PromptStreamError(f"corrupt spool moved aside: {exc}"))

    def _spool_queued(self) -> None:
        """Move everything queued into the spool, in large transactions."""
        with self._spooling_lock:
            while True:
                events = self._queue.take(_SPOOL_CHUNK)
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
                spool = self._get_spool()
                try:
                    result = spool.append(chunk, time.time_ns() // 1_000_000)
                except SpoolUnavailableError as exc:
                    self._queue.give_back(list(chunk))
                    self._last_error = f"spool unavailable: {exc}"
                    self._warn_once("spool_unavailable", "spool unavailable (%s); events wait in memory", exc)
                    return
                except SpoolCorruptError as exc:
                    self._queue.give_back(list(chunk))
                    self._replace_corrupt_spool(spool, exc)
                    continue
                self._warned.discard("spool_unavailable")
                self._spooled += result.stored
                if result.dropped:
                    self._spool_dropped += result.dropped
                    self._last_error = "spool is full"
                    self._warn_once(
                        "spool_full",
                        "spool is full (max_spool_bytes=%d); newest events are dropped",
                        self._config.max_spool_bytes,
                    )
                else:
                    self._warned.discard("spool_full")
                with self._progress:
                    self._progress.notify_all()
                if len(chunk) >= self._config.batch_max_events or len(self._queue):
                    self._sender_wake.set()

    def _checkpoint_unless_in_a_burst(self) -> None:
        """Run the WAL checkpoint that is due (see _sqlite_spool._CHECKPOINT_EVERY_BYTES) if events arrive slowly
        enough that the queue cannot pile up behind it: it blocks the spooler for tens of ms per 16 MiB, so during a
        burst it waits for the burst's end. Measured in a tight loop: a checkpoint inside every append, after every
        partial chunk, or whenever the queue ran dry for a moment (which a burst's queue does, and the checkpoint
        then owed ~150 MiB and took 200-330 ms) each let the queue fill to its cap."""
        rate = self._arrivals.rate(self._queue.offered, time.monotonic())
        if rate is not None and rate < _CHECKPOINT_BELOW_EVENTS_PER_S and self._spool is not None:
            self._spool.checkpoint_if_due()

    def _run_before_send(self, payloads: list[bytes]) -> list[bytes]:
        """The user's hook on each event, here on the spooler thread; see _privacy.py for the rules."""
        assert self._before_send is not None
        outcome = apply_before_send(self._before_send, payloads)
        self._filtered += outcome.filtered
        for error in outcome.errors:
            self._hook_errors += 1
            self._last_error = error
            self._warn_once("before_send", "promptstream: %s; the event was dropped", error)
            self._report(PromptStreamError(error))
        return outcome.kept

    # -- spool -> server ----------------------------------------------------------------------------------------------

    def _deliver(self, deadline: float | None) -> None:
        """Send batches until the spool has nothing unclaimed, delivery is paused, or the deadline passes."""
        with self._delivery_lock:
            yielded_until = time.monotonic() + _MAX_YIELD_TO_SPOOLER
            while not self._stop.is_set() or deadline is not None:
                if time.monotonic() < self._paused_until:
                    return
                if deadline is not None and time.monotonic() >= deadline:
                    return
                if len(self._queue) > self._config.batch_max_events and time.monotonic() < yielded_until:
                    # Spool first: while a burst outruns the spooler, our transactions would hold the spool lock
                    # across GIL hand-offs and the queue would overflow. Bounded, so a producer that never lets
                    # up cannot starve delivery.
                    self._spooler_wake.set()
                    self._stop.wait(self._config.spool_interval)
                    continue
                spool = self._get_spool()
                try:
                    batch = spool.claim(
                        self._config.batch_max_events,
                        self._config.batch_max_bytes,
                        rfc3339_ms(time.time_ns() // 1_000_000),
                    )
                except SpoolUnavailableError as exc:
                    self._last_error = f"spool unavailable: {exc}"
                    return
                except SpoolCorruptError as exc:
                    self._replace_corrupt_spool(spool, exc)
                    continue
                if batch is None:
                    if self._deliveries_since_compact:
                        self._deliveries_since_compact = 0
                        spool.compact_if_empty()
                    return
                if not self._deliver_batch(spool, batch, deadline):
                    return

    def _deliver_batch(self, spool: Spool, first: ClaimedBatch, deadline: float | None) -> bool:
        """Deliver one claimed batch (and the halves it may be split into). False when delivery should stop."""
        schedule = RetrySchedule(first=0.5, cap=self._config.max_backoff)
        todo = [first]
        attempted: set[str] = set()  # a batch's first attempt follows its claim or split at once: no renew needed
        while todo:
            batch = todo[0]
            try:
                if batch.batch_id in attempted and not spool.renew(batch):
                    todo.pop(0)  # another process took it over while we waited; it is theirs now
                    continue
            except (SpoolUnavailableError, SpoolCorruptError) as exc:
                self._last_error = f"spool unavailable: {exc}"
                return False
            attempted.add(batch.batch_id)
            outcome = self._sender.send(batch)
            if isinstance(outcome, Delivered):
                todo.pop(0)
                self._acknowledge(spool, batch, outcome)
                schedule.reset()
            elif isinstance(outcome, Refused):
                todo.pop(0)
                if len(batch.seqs) > 1:
                    todo[0:0] = spool.split(batch)
                else:
                    spool.dead_letter(batch, outcome.reason)
                    self._rejected += 1
                    self._report(BadRequestError(outcome.reason, status_code=outcome.status))
            elif isinstance(outcome, Paused):
                self._paused_until = time.monotonic() + self._config.auth_pause
                self._last_error = outcome.reason
                self._release_all(spool, todo)
                self._warn_once("paused", "delivery paused for %.0f s: %s", self._config.auth_pause, outcome.reason)
                self._report(AuthenticationError(outcome.reason, status_code=outcome.status))
                return False
            else:
                assert isinstance(outcome, Retry)
                self._retries += 1
                self._last_error = outcome.reason
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

    def _acknowledge(self, spool: Spool, batch: ClaimedBatch, outcome: Delivered) -> None:
        response = outcome.response
        rejected = [(r.index, r.reason) for r in response.rejected]
        for attempt in range(3):
            try:
                spool.ack(batch, rejected)
                break
            except (SpoolUnavailableError, SpoolCorruptError) as exc:
                # the lease will lapse and the batch be resent with the same key: the server dedups it
                self._last_error = f"could not acknowledge in spool: {exc}"
                if attempt == 2:
                    return
                self._stop.wait(0.1)
        self._sent += len(batch.seqs) - len(rejected)
        self._duplicates += response.duplicates
        self._rejected += len(rejected)
        self._deliveries_since_compact += 1
        self._warned.discard("paused")
        if rejected:
            self._report(
                BadRequestError(
                    f"server rejected {len(rejected)} event(s), kept as dead letters: {rejected[0][1]}",
                    status_code=200,
                )
            )
        with self._progress:
            self._progress.notify_all()

    def _release_all(self, spool: Spool, batches: list[ClaimedBatch]) -> None:
        for batch in batches:
            with contextlib.suppress(SpoolUnavailableError, SpoolCorruptError):  # else the lease lapses by itself
                spool.release(batch)

    # -- flush, close, stats --------------------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """True when every event tracked before the call has been acknowledged by the server (or dead-lettered)."""
        deadline = time.monotonic() + (DEFAULT_FLUSH_TIMEOUT if timeout is None else max(0.0, timeout))
        self._hurry.set()
        self._spool_queued()
        if len(self._queue):
            return False  # the spool refused them (unavailable); they are still queued
        spool = self._get_spool()
        try:
            # everything in the spool now: this client's events and any backlog it found (a shared spool's too)
            mark = spool.last_seq()
        except (SpoolUnavailableError, SpoolCorruptError):
            mark = sys.maxsize  # cannot tell where our events end: wait for an empty spool
        if mark == 0:
            return True
        while True:
            try:
                if not spool.has_pending_through(mark):
                    return True
            except (SpoolUnavailableError, SpoolCorruptError):
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if self._threads_alive() and not self._stop.is_set():
                self._sender_wake.set()
                with self._progress:
                    self._progress.wait(min(remaining, 0.05))
            else:
                self._deliver(deadline)
                if time.monotonic() < self._paused_until:
                    return False
                spool = self._get_spool()

    def close(self, timeout: float | None = None) -> bool:
        """Flush (up to ``timeout``), then stop the threads and close the spool. Returns what flush returned."""
        if self._closed:
            return True
        budget = self._config.shutdown_timeout if timeout is None else max(0.0, timeout)
        deadline = time.monotonic() + budget
        flushed = self.flush(budget)
        self._closed = True
        self._stop.set()
        self._hurry.set()
        self._spooler_wake.set()
        self._sender_wake.set()
        for thread in self._threads:
            thread.join(max(0.1, deadline - time.monotonic()))
        self._spool_queued()  # anything tracked during the close window
        if not any(t.is_alive() for t in self._threads) and self._spool is not None:
            self._spool.close()
        _live_agents.discard(self)
        return flushed

    def stats(self) -> DeliveryStats:
        pending = dead = 0
        if self._spool is not None:
            try:
                counts = self._spool.counts()
                pending, dead = counts.pending, counts.dead_lettered
            except (SpoolUnavailableError, SpoolCorruptError):
                pass
        queue = self._queue
        tracked = queue.offered
        dropped = queue.dropped + self._spool_dropped
        removed = self._filtered + self._hook_errors  # by before_send: never spooled, not "dropped" either
        return DeliveryStats(
            tracked=tracked,
            # in memory = neither spooled nor dropped: the queue, and a chunk the spooler holds while the disk
            # refuses it (len(queue) alone would miss that chunk and break tracked = spooled + dropped + queued)
            queued=max(0, tracked - self._spooled - dropped - removed),
            spooled=self._spooled,
            pending=pending,
            sent=self._sent,
            duplicates=self._duplicates,
            rejected=self._rejected,
            dead_lettered=dead,
            dropped=dropped,
            filtered=self._filtered,
            hook_errors=self._hook_errors,
            retries=self._retries,
            spool_path=self._spool.path if self._spool is not None else None,
            spool_quarantined=self._quarantined,
            paused=time.monotonic() < self._paused_until,
            last_error=self._last_error,
        )

    # -- reporting ------------------------------------------------------------------------------------------------

    def _warn_once(self, episode: str, message: str, *args: object) -> None:
        """One log line per episode (a full queue, a paused delivery), not one per event."""
        if episode not in self._warned:
            self._warned.add(episode)
            logger.warning("promptstream: " + message, *args)

    def _report(self, error: PromptStreamError) -> None:
        if self._on_error is None:
            return
        try:
            self._on_error(error)
        except Exception:
            logger.debug("promptstream: on_error callback raised", exc_info=True)

    # -- process lifecycle ----------------------------------------------------------------------------------------

    def _before_fork(self) -> None:
        self._spool_open_lock.acquire()  # no spool half-opened while the process is copied
        if self._spool is not None:
            self._spool.prepare_fork()

    def _after_fork_in_parent(self) -> None:
        if self._spool is not None:
            self._spool.after_fork_in_parent()
        self._spool_open_lock.release()

    def _after_fork_in_child(self) -> None:
        if self._spool is not None:
            self._inherited.append(self._spool)  # the parent's: never used, never closed here
        self._reset_process_state()

    def _shutdown_at_exit(self) -> None:
        if os.getpid() != self._pid:
            return
        try:
            self.close(self._config.shutdown_timeout)
        except Exception:
            logger.debug("promptstream: error during exit flush", exc_info=True)


# The agents of this process, until closed: the fork and exit hooks must reach them. Strong references on purpose:
# an agent whose threads could not start (a client made during interpreter shutdown) has nothing else keeping it
# alive, and its events would vanish with it; a running agent is kept alive by its threads anyway.
_live_agents: ForkRegistry[TrackingAgent] = ForkRegistry(weak=False)


def _flush_agents_at_exit() -> None:
    for agent in _live_agents:
        agent._shutdown_at_exit()


atexit.register(_flush_agents_at_exit)

_uwsgi_warned = False


def _warn_if_uwsgi_without_threads() -> None:
    global _uwsgi_warned  # once per process
    uwsgi = sys.modules.get("uwsgi")
    if uwsgi is None or _uwsgi_warned:
        return
    options = getattr(uwsgi, "opt", {})
    if not (options.get("enable-threads") or options.get("threads")):
        _uwsgi_warned = True
        logger.warning(
            "promptstream: uWSGI runs without --enable-threads, so the background sender never runs; "
            "events stay in the spool until a process with threads (or flush()) sends them"
        )
