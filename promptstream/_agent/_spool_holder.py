"""The one spool an agent uses in one process: opened on first use (on a background thread), replaced when it turns
out corrupt, memory-only when the disk cannot be used, and closed for good with its client: after ``close()``
nothing reopens the file (``stats()`` then reports the counts taken at close)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path

from .._config import AgentConfig
from .._errors import PromptStreamError
from .._forksafety import import_in_background
from ._reporting import Counters, Reporter
from ._spool import MemorySpool, Spool, SpoolCorruptError, SpoolCounts, SpoolUnavailableError

__all__ = ["SpoolHolder"]

logger = logging.getLogger("promptstream")


class SpoolHolder:
    def __init__(
        self,
        config: AgentConfig,
        path: Path,
        *,
        owner: str,
        counters: Counters,
        reporter: Reporter,
        adopt: Sequence[Path] = (),
    ) -> None:
        self._config = config
        self._path = path
        self._adopt = tuple(adopt)  # other spool files whose events move into ours when it opens
        self._owner = owner
        self._counters = counters
        self._reporter = reporter
        self._spool: Spool | None = None
        self._open_lock = threading.Lock()
        self.closed = False
        self.counts_at_close: SpoolCounts | None = None

    @property
    def current(self) -> Spool | None:
        """The open spool, or None: never opens one."""
        return self._spool

    def get(self) -> Spool:
        """The spool, opened on first use. Raises ``SpoolUnavailableError`` once the holder is closed."""
        spool = self._spool
        if spool is not None:
            return spool
        with self._open_lock:
            if self.closed:
                raise SpoolUnavailableError("the client is closed")
            if self._spool is None:
                self._spool = self._open()
            return self._spool

    def _open(self) -> Spool:
        config = self._config
        if not config.spool:
            return MemorySpool(max_bytes=config.max_spool_bytes)
        # Imported only now, and on our thread under the fork lock (see _forksafety): `import promptstream` skips
        # sqlite3, and a fork() cannot land inside this first import.
        try:
            import_in_background("promptstream._agent._sqlite_spool")
        except ImportError as exc:  # a Python built without sqlite3 (some slim container images)
            return self._memory_only(f"sqlite3 is unavailable ({exc})")
        import sqlite3

        from ._sqlite_spool import SqliteSpool

        try:
            spool = SqliteSpool(
                self._path,
                owner=self._owner,
                max_bytes=config.max_spool_bytes,
                lease_seconds=config.lease_seconds,
                durable=config.durable,
                adopt=self._adopt,
            )
        except (OSError, sqlite3.Error, SpoolUnavailableError, SpoolCorruptError) as exc:
            return self._memory_only(f"spool at {self._path} is unusable ({exc})")
        if spool.quarantined:
            self._counters.quarantined += len(spool.quarantined)
            self._reporter.report(PromptStreamError(f"corrupt spool moved aside: {spool.quarantined[-1]}"))
        return spool

    def _memory_only(self, reason: str) -> Spool:
        message = f"{reason}; events are kept in memory only"
        logger.warning("promptstream: %s", message)
        self._reporter.report(PromptStreamError(message))
        return MemorySpool(max_bytes=self._config.max_spool_bytes)

    def replace_corrupt(self, spool: Spool, exc: Exception) -> None:
        """Move a spool that failed as corrupt aside and open a fresh one in its place."""
        with self._open_lock:
            if self._spool is not spool or self.closed:
                return
            logger.warning("promptstream: spool failed (%s); moving it aside and starting a new one", exc)
            spool.close()
            if spool.path is not None:
                from ._sqlite_spool import quarantine_spool  # only a SqliteSpool has a path: already imported

                quarantine_spool(Path(spool.path))
            self._counters.quarantined += 1
            self._spool = self._open()
        self._reporter.report(PromptStreamError(f"corrupt spool moved aside: {exc}"))

    def counts(self) -> SpoolCounts | None:
        """The spool's counts now (after close: as they were at close), or None when they cannot be read."""
        spool = self._spool
        if spool is None:
            return self.counts_at_close
        try:
            return spool.counts()
        except (SpoolUnavailableError, SpoolCorruptError):
            return None

    def close(self) -> None:
        """Close the spool for good: later calls never reopen it."""
        with self._open_lock:
            if self.closed:
                return
            spool = self._spool
            if spool is not None:
                try:
                    self.counts_at_close = spool.counts()
                except (SpoolUnavailableError, SpoolCorruptError):
                    self.counts_at_close = None
            self._spool = None
            self.closed = True
        if spool is None:
            return
        try:
            spool.close()
        except Exception:  # closing must not raise into close(); the connection is gone either way
            logger.debug("promptstream: error closing the spool", exc_info=True)

    # -- fork: no spool half-opened while the process is copied --------------------------------------------------

    def before_fork(self) -> None:
        self._open_lock.acquire()
        if self._spool is not None:
            self._spool.prepare_fork()

    def after_fork_in_parent(self) -> None:
        if self._spool is not None:
            self._spool.after_fork_in_parent()
        self._open_lock.release()
