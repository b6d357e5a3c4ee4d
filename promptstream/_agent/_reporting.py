"""What the agent counts and how it tells the user: the counters, warn-once logging, ``on_error`` and delivery
episodes. Nothing here does I/O beyond logging, and nothing here is on the ``track_*`` fast path."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from .._errors import PromptStreamError

__all__ = ["Counters", "ErrorCallback", "Reporter"]

logger = logging.getLogger("promptstream")

ErrorCallback = Callable[[PromptStreamError], None]


class Counters:
    """Every count the agent keeps, each with one owner that alone writes it, under the lock that makes it the owner:

    - the spooler (``Spooler``, under its spooling lock): ``spooled``, ``spool_dropped``, ``filtered``,
      ``hook_errors``;
    - delivery (``Delivery``, under its delivery lock): ``sent``, ``duplicates``, ``rejected``, ``retries``,
      ``delivery_latency``;
    - the spool holder (``SpoolHolder``, under its open lock): ``quarantined``.

    The in-memory queue counts what producers offered, dropped and waited for itself (``EventQueue``). Readers
    (``stats()``) read without a lock: each field is one int, written by one owner.
    """

    __slots__ = (
        "delivery_latency",
        "duplicates",
        "filtered",
        "hook_errors",
        "quarantined",
        "rejected",
        "retries",
        "sent",
        "spool_dropped",
        "spooled",
    )

    def __init__(self) -> None:
        self.spooled = 0
        self.spool_dropped = 0
        self.filtered = 0
        self.hook_errors = 0
        self.sent = 0
        self.duplicates = 0
        self.rejected = 0
        self.retries = 0
        self.quarantined = 0
        self.delivery_latency: float | None = None  # seconds, of the last acknowledged batch's request


class Reporter:
    """Logs state changes once per episode (a full queue, a failing delivery), never once per event; keeps
    ``last_error``; hands typed errors to the user's ``on_error``, whose exceptions never reach the agent."""

    def __init__(self, on_error: ErrorCallback | None, url: str) -> None:
        self._on_error = on_error
        self.url = url
        self._lock = threading.Lock()
        self._warned: set[str] = set()
        self.last_error: str | None = None
        self._failing = False
        self._failed_attempts = 0

    def warn_once(self, episode: str, message: str, *args: object) -> None:
        """One WARNING per episode; ``episode_over`` lets the next one warn again."""
        if episode in self._warned:  # the common case, without the lock: a full queue calls this per event
            return
        with self._lock:
            if episode in self._warned:
                return
            self._warned.add(episode)
        logger.warning("promptstream: " + message, *args)

    def episode_over(self, episode: str) -> None:
        self._warned.discard(episode)

    def note(self, message: str) -> None:
        """What went wrong last, for ``stats().last_error``."""
        self.last_error = message

    def report(self, error: PromptStreamError, *, note: bool = True) -> None:
        """Tell the user's ``on_error`` (and ``last_error``) about ``error``."""
        if note:
            self.last_error = str(error)
        if self._on_error is None:
            return
        try:
            self._on_error(error)
        except Exception:
            logger.debug("promptstream: on_error callback raised", exc_info=True)

    # -- delivery episodes: the first failure warns and reports, the first success after them says so ------------

    @property
    def delivery_failing(self) -> bool:
        return self._failing

    def delivery_failed(self, error: PromptStreamError, *, paused_for: float | None = None) -> None:
        """An attempt failed. The first failure of an episode logs one WARNING (reason and URL, never the key) and
        calls ``on_error`` once; later failures of the same episode only update ``last_error``."""
        self.last_error = str(error)
        self._failed_attempts += 1
        if self._failing:
            return
        self._failing = True
        if paused_for is None:
            logger.warning(
                "promptstream: delivery to %s is failing (%s); events wait in the spool and are retried with backoff",
                self.url,
                error,
            )
        else:
            logger.warning(
                "promptstream: delivery to %s paused for %.0f s (%s); events wait in the spool",
                self.url,
                paused_for,
                error,
            )
        self.report(error)

    def delivery_succeeded(self) -> None:
        if not self._failing:
            return
        logger.info(
            "promptstream: delivery to %s recovered after %d failed attempt(s)", self.url, self._failed_attempts
        )
        self._failing = False
        self._failed_attempts = 0
