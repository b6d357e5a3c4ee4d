"""The tracking agent: wires the queue, the spooler, the spool holder and delivery together, and owns their threads
and the process's lifecycle (flush, close, fork, exit).

Two threads, because the two jobs must not wait for each other:
- ``promptstream-spooler`` moves the in-memory queue into the spool every ``spool_interval`` (50 ms), so a crash
  loses at most that window. It must keep doing so while a request is in flight or backing off for a minute.
- ``promptstream-sender`` claims batches from the spool, POSTs them and acknowledges them, backing off on failure.
Callers of ``track_*`` only append to the queue: they never take a lock either thread holds during I/O.

Fork: a child never uses (or closes) the parent's SQLite connection, HTTP client, queue or threads; it starts
fresh ones on first use. Exit: an atexit hook spools what is in memory and gives delivery ``shutdown_timeout``;
that path needs no new thread (Python 3.12+ cannot start one during shutdown).

``flush()``, ``close()`` and ``stats()`` never raise: whatever goes wrong is logged and reported, and the answer
says so (False, or counts that are as exact as the agent knows them).
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .._config import AgentConfig, redact_url
from .._forksafety import ForkRegistry, import_in_background
from .._http import MODULES_FOR_FIRST_REQUEST, HttpTransport
from .._models import DeliveryStats
from .._privacy import BeforeSend
from ._delivery import Delivery
from ._location import spool_file_path
from ._queue import EventQueue
from ._reporting import Counters, ErrorCallback, Reporter
from ._sender import BatchSender
from ._spool import SpoolCorruptError, SpoolUnavailableError, owner_token
from ._spool_holder import SpoolHolder
from ._spooler import Spooler

__all__ = ["DEFAULT_FLUSH_TIMEOUT", "TrackingAgent", "spool_file_path"]

logger = logging.getLogger("promptstream")

DEFAULT_FLUSH_TIMEOUT = 10.0
# How long a track_* call that finds the queue full waits for the spooler to make room (EventQueue): long enough to
# ride out a spool write of the largest chunk on a busy machine, short enough that a stalled spool costs one call
# one second, once (docs/delivery.md, "A full queue").
FULL_QUEUE_MAX_WAIT = 1.0


class TrackingAgent:
    def __init__(
        self,
        config: AgentConfig,
        transport: HttpTransport,
        *,
        spool_path: Path,
        adopt: Sequence[Path] = (),
        on_error: ErrorCallback | None = None,
        before_send: BeforeSend | None = None,
    ) -> None:
        self._config = config
        self._transport = transport
        self._spool_path = spool_path
        # spool files of earlier versions (one per API key): their backlog moves into ours when it is opened
        self._adopt = tuple(adopt)
        self._on_error = on_error
        self._before_send = before_send
        self._sender = BatchSender(transport, encoding=config.encoding, gzip_threshold=config.gzip_threshold_bytes)
        # A parent's spool holders, kept referenced so the GC never closes their spool in the child: normally its
        # connection was closed before the fork, but not if prepare_fork() could not take the spool lock in time.
        self._inherited: list[object] = []
        self._closed = False
        self._close_lock = threading.Lock()
        self._close_result: bool | None = None
        self._finish_lock = threading.Lock()
        self._reset_process_state()
        _live_agents.add(self)
        # Started now, not on the first event: a process that only opens the spool (a desktop tool on its next start)
        # must deliver the backlog it finds. Starting threads is no I/O; they open the spool in the background.
        self._start()

    def _reset_process_state(self) -> None:
        """Everything that belongs to one process. Called at construction and in a forked child."""
        config = self._config
        self._pid = os.getpid()
        self._counters = Counters()
        self._reporter = Reporter(self._on_error, redact_url(self._transport.base_url))
        self._stop = threading.Event()
        self._spooler_wake = threading.Event()
        self._sender_wake = threading.Event()
        self._hurry = threading.Event()
        self._drain_now = threading.Event()  # flush()/close(): the sender sends every batch, full or not, at once
        # Events spooled since the sender last took them into account (see _sender_loop); guarded by _unsent_lock.
        self._unsent = 0
        self._unsent_lock = threading.Lock()
        self._progress = threading.Condition(threading.Lock())
        # Events arrive encoded (JSON bytes): encoded once, in the caller, and smaller in memory than the struct.
        self._queue: EventQueue[bytes] = EventQueue(
            config.max_queue_size, max_wait=FULL_QUEUE_MAX_WAIT, on_full=self._spooler_wake.set
        )
        self._holder = SpoolHolder(
            config,
            self._spool_path,
            owner=owner_token(),
            counters=self._counters,
            reporter=self._reporter,
            adopt=self._adopt,
        )
        self._spooler = Spooler(
            config,
            self._queue,
            self._holder,
            counters=self._counters,
            reporter=self._reporter,
            before_send=self._before_send,
            spooled=self._after_spooling,
        )
        self._delivery = Delivery(
            config,
            self._sender,
            self._holder,
            self._queue,
            counters=self._counters,
            reporter=self._reporter,
            stop=self._stop,
            hurry=self._hurry,
            wake_spooler=self._spooler_wake.set,
            progressed=self._notify_progress,
        )
        self._start_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._threads_done: set[str] = set()  # agent threads past their loop (see _finish_close)
        self._started = False

    # -- the hot path ---------------------------------------------------------------------------------------------

    def enqueue(self, event: bytes) -> None:
        if self._closed:
            self._drop_after_close()
            return
        if not self._queue.put(event):
            self._reporter.warn_once(
                "queue_full",
                "in-memory queue is full (%d events) and the spooler makes no room; new events are being dropped",
                self._config.max_queue_size,
            )
        if not self._started:
            self._start()

    def _drop_after_close(self) -> None:
        self._queue.count_drop()
        self._reporter.warn_once("closed", "track_* called on a closed client; the event was dropped")

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
        self._guarded(self._holder.get)
        while not self._stop.is_set():
            self._spooler_wake.wait(self._config.spool_interval)
            self._spooler_wake.clear()
            self._guarded(self._spooler.spool_queued)
        self._guarded(self._spooler.spool_queued)
        self._guarded(self._finish_close)

    def _sender_loop(self) -> None:
        """Full batches as soon as they are spooled; everything else every ``flush_interval``.

        At a web app's steady few thousand events per second, every request, claim and acknowledgement costs about
        as much for 30 events as for 1,000 (docs/benchmarks.md, "Where the CPU goes"). So the spooler wakes this
        thread only once a whole batch's worth has been spooled (``_after_spooling``), and such a wake-up sends
        only whole batches; a partial batch waits for the next drain, at most ``flush_interval`` after the last
        one, as before. flush() and close() drain at once (``_drain_now``).
        """
        self._guarded(import_in_background, *MODULES_FOR_FIRST_REQUEST, "backoff")
        interval = self._config.flush_interval
        next_drain = time.monotonic() + interval
        while not self._stop.is_set():
            self._sender_wake.wait(max(0.0, next_drain - time.monotonic()))
            self._sender_wake.clear()
            if self._drain_now.is_set() or time.monotonic() >= next_drain:
                self._drain_now.clear()
                with self._unsent_lock:
                    self._unsent = 0
                self._guarded(self._delivery.deliver, None)
                next_drain = time.monotonic() + interval
                continue
            with self._unsent_lock:
                full_batches, self._unsent = divmod(self._unsent, self._config.batch_max_events)
            if full_batches:
                self._guarded(self._delivery.deliver, None, full_batches)
        self._guarded(self._finish_close)

    def _guarded(self, step: Callable[..., object], *args: object) -> None:
        """A background step never dies of an unexpected error: it is logged, reported, and tried again later."""
        try:
            step(*args)
        except SpoolUnavailableError as exc:  # the spool's own word for "not now" (or a closed client)
            self._reporter.note(f"spool unavailable: {exc}")
            self._stop.wait(1.0)
        except Exception as exc:
            self._reporter.note(f"{type(exc).__name__}: {exc}")
            logger.exception("promptstream: unexpected error in the tracking agent")
            self._stop.wait(1.0)

    def _after_spooling(self, stored: int) -> None:
        self._notify_progress()
        with self._unsent_lock:
            self._unsent += stored
            batch_waiting = self._unsent >= self._config.batch_max_events
        if batch_waiting:
            self._sender_wake.set()

    def _notify_progress(self) -> None:
        with self._progress:
            self._progress.notify_all()

    # -- flush, close, stats --------------------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """True when every event tracked before the call has been acknowledged by the server (or dead-lettered).
        Never raises. After ``close()``: what close found, since nothing can be delivered any more."""
        if self._closed:
            return self._closed_truth()
        try:
            return self._flush(timeout)
        except Exception as exc:
            self._reporter.note(f"flush failed: {type(exc).__name__}: {exc}")
            logger.exception("promptstream: unexpected error in flush()")
            return False

    def _flush(self, timeout: float | None) -> bool:
        deadline = time.monotonic() + (DEFAULT_FLUSH_TIMEOUT if timeout is None else max(0.0, timeout))
        self._hurry.set()
        self._spooler.spool_queued()
        if len(self._queue):
            return False  # the spool refused them (unavailable); they are still queued
        try:
            # everything in the spool now: this client's events and any backlog it found (a shared spool's too)
            spool = self._holder.get()
            mark = spool.last_seq()
        except (SpoolUnavailableError, SpoolCorruptError):
            mark = sys.maxsize  # cannot tell where our events end: wait for an empty spool
        if mark == 0:
            return True
        while True:
            try:
                if not self._holder.get().has_pending_through(mark):
                    return True
            except (SpoolUnavailableError, SpoolCorruptError):
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if self._threads_alive() and not self._stop.is_set():
                self._drain_now.set()
                self._sender_wake.set()
                with self._progress:
                    self._progress.wait(min(remaining, 0.05))
            else:
                self._delivery.deliver(deadline)
                if self._delivery.paused:
                    return False

    def close(self, timeout: float | None = None) -> bool:
        """Flush (up to ``timeout``), then stop the threads and close the spool for good. Returns what flush
        returned; a second call returns the same truth (False if the first flush failed or events were lost)."""
        with self._close_lock:
            if self._close_result is not None:
                return self._closed_truth()
            try:
                self._close_result = self._close(timeout)
            except Exception as exc:
                self._close_result = False
                self._reporter.note(f"close failed: {type(exc).__name__}: {exc}")
                logger.exception("promptstream: unexpected error in close()")
            _live_agents.discard(self)
            return self._closed_truth()

    def _close(self, timeout: float | None) -> bool:
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
        self._finish_close()
        return flushed

    def _finish_close(self) -> None:
        """Once closed and no other agent thread runs: what was tracked during the close window goes to the spool,
        then the spool is closed for good. Run by close() or, if a thread outlived close's wait, by the last thread
        to end. An enqueue that raced this stays in the queue and is counted as dropped (stats), never lost
        uncounted."""
        with self._finish_lock:
            if threading.current_thread() in self._threads:
                self._threads_done.add(threading.current_thread().name)  # this one's last step: as good as ended
            if not self._closed or self._holder.closed:
                return
            if any(t.is_alive() and t.name not in self._threads_done for t in self._threads):
                return
            try:
                self._spooler.spool_queued()
            finally:
                self._holder.close()

    def _closed_truth(self) -> bool:
        """After close: True only if its flush succeeded and nothing tracked since was lost."""
        return self._close_result is True and not self._lost_after_close()

    def _lost_after_close(self) -> int:
        """Events left in the queue once the spool is closed for good (an enqueue that raced close)."""
        return len(self._queue) if self._holder.closed else 0

    def stats(self) -> DeliveryStats:
        """A snapshot of the counters. Never raises and never opens (or reopens) the spool."""
        try:
            return self._stats()
        except Exception as exc:  # a snapshot must never take the app down
            logger.debug("promptstream: stats() failed", exc_info=True)
            return DeliveryStats(last_error=f"stats unavailable: {type(exc).__name__}: {exc}")

    def _stats(self) -> DeliveryStats:
        counters, queue = self._counters, self._queue
        counts = self._holder.counts()
        oldest_age: float | None = None
        if counts is not None and counts.oldest_created_ms is not None and counts.pending:
            oldest_age = max(0.0, time.time() - counts.oldest_created_ms / 1000)
        tracked = queue.offered
        dropped = queue.dropped + counters.spool_dropped + self._lost_after_close()
        removed = counters.filtered + counters.hook_errors  # by before_send: never spooled, not "dropped" either
        spool = self._holder.current
        return DeliveryStats(
            tracked=tracked,
            # in memory = neither spooled nor dropped: the queue, and a chunk the spooler holds while the disk
            # refuses it (len(queue) alone would miss that chunk and break tracked = spooled + dropped + queued)
            queued=max(0, tracked - counters.spooled - dropped - removed),
            spooled=counters.spooled,
            pending=counts.pending if counts is not None else 0,
            sent=counters.sent,
            duplicates=counters.duplicates,
            rejected=counters.rejected,
            dead_lettered=counts.dead_lettered if counts is not None else 0,
            dead_letters_pruned=counts.dead_letters_pruned if counts is not None else 0,
            dropped=dropped,
            filtered=counters.filtered,
            hook_errors=counters.hook_errors,
            retries=counters.retries,
            queue_full_waits=queue.waits,
            oldest_pending_age=oldest_age,
            spool_bytes=counts.pending_bytes + counts.dead_letter_bytes if counts is not None else 0,
            delivery_latency=counters.delivery_latency,
            spool_path=spool.path if spool is not None else None,
            spool_quarantined=counters.quarantined,
            paused=self._delivery.paused,
            last_error=self._reporter.last_error,
        )

    # -- process lifecycle ----------------------------------------------------------------------------------------

    def _before_fork(self) -> None:
        self._holder.before_fork()

    def _after_fork_in_parent(self) -> None:
        self._holder.after_fork_in_parent()

    def _after_fork_in_child(self) -> None:
        self._inherited.append(self._holder)  # the parent's spool: never used, never closed here
        self._close_lock = threading.Lock()  # a parent's thread may have held these at the fork
        self._finish_lock = threading.Lock()
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
