"""``promptstream serve --workers N``: N worker processes accepting connections on one listening socket (a pre-fork,
as gunicorn's), each with its own event loop, threads and database pool; the parent only supervises.

Why a pre-fork of our own rather than uvicorn's ``workers``: uvicorn's public API starts workers only from an import
string and binds the socket itself, so the banner could no longer name the port before serving (``--port 0``) and the
settings, API keys included, would have to travel through environment variables; its supervisor class is internal
and changed its signature between the uvicorn releases we support. Forking after the bind is a few dozen lines,
shares the imported code copy-on-write, and a worker starts in milliseconds, not in an interpreter's import time.

POSIX only (``os.fork``); elsewhere more than one worker is refused and one process serves.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from types import FrameType

logger = logging.getLogger("promptstream.server")

_STOP_GRACE = 30.0  # seconds a worker gets to finish its requests after SIGTERM, before SIGKILL
_STARTUP_WINDOW = 5.0  # a worker that dies this soon after starting failed to start (database gone, bad settings)
_STARTUP_FAILURES = 3  # ... and after this many in a row the parent gives up rather than fork forever
_POLL = 0.2


def can_fork() -> bool:
    """Whether this platform can run more than one worker.

    Example:
        ```python
        workers = 4 if can_fork() else 1
        ```
    """
    return hasattr(os, "fork")


def run_workers(count: int, sock: socket.socket, serve_one: Callable[[socket.socket], None]) -> int:
    """Fork ``count`` workers that each call ``serve_one(sock)`` (open their own storage, serve until SIGTERM), and
    supervise them until SIGINT or SIGTERM: a worker that dies is replaced; one that keeps dying at start stops the
    whole server. Returns the exit status for the command (0 after a requested stop, 1 when the workers could not
    start). The caller must hold no thread and no database connection when calling this (they do not survive a fork).

    Example:
        ```python
        # doc: no-run: serves until interrupted
        run_workers(4, bind_socket("0.0.0.0", 8700), serve_one)
        ```
    """
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    children: dict[int, float] = {}  # pid -> when it started
    failures = 0
    status = 0
    try:
        for _ in range(count):
            pid = _fork_worker(sock, serve_one)
            children[pid] = time.monotonic()
        while not stop.is_set():
            pid, wait_status = _reap()
            if pid == 0:
                stop.wait(_POLL)
                continue
            started = children.pop(pid, None)
            if started is None:
                continue
            code = os.waitstatus_to_exitcode(wait_status)
            if time.monotonic() - started < _STARTUP_WINDOW:
                failures += 1
                if failures >= _STARTUP_FAILURES:
                    logger.error("workers keep failing at start (last exit status %d): stopping", code)
                    status = 1
                    break
            else:
                failures = 0
            logger.warning("worker %d exited with status %d: starting another", pid, code)
            children[_fork_worker(sock, serve_one)] = time.monotonic()
    finally:
        _stop_all(children)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status


def _reap() -> tuple[int, int]:
    try:
        return os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return 0, 0


def _fork_worker(sock: socket.socket, serve_one: Callable[[socket.socket], None]) -> int:
    parent = os.getpid()
    pid = os.fork()
    if pid != 0:
        return pid
    code = 0
    try:
        # its own process group: a terminal's Ctrl-C reaches the parent alone, which stops the workers in order
        os.setpgid(0, 0)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        _watch_parent(parent)
        serve_one(sock)
    except BaseException:
        logger.exception("worker %d stopped on an error", os.getpid())
        code = 3
    finally:
        logging.shutdown()
        os._exit(code)  # never return into the parent's code (its loop, its finally blocks) in the child


def _watch_parent(parent: int) -> None:
    """A worker whose parent died (kill -9) stops itself, rather than serving on unsupervised."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="promptstream-server-parent-watch", daemon=True).start()


def _stop_all(children: dict[int, float]) -> None:
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + _STOP_GRACE
    pending = set(children)
    while pending and time.monotonic() < deadline:
        for pid in list(pending):
            with contextlib.suppress(ChildProcessError):
                done, _ = os.waitpid(pid, os.WNOHANG)
                if done == 0:
                    continue
            pending.discard(pid)
        if pending:
            time.sleep(0.05)
    for pid in pending:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
