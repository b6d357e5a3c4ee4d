"""The tracking agent's health as OpenTelemetry metrics: observable instruments whose callbacks read
``client.stats()`` (``DeliveryStats``) when the application's metric reader collects, so a stuck agent shows on the
dashboards and alerts a team already has. Nothing is recorded between collections; nothing runs on ``track_*``."""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from .._config import redact_url
from .._models import DeliveryStats
from .._version import __version__

__all__ = ["METRIC_NAMES", "AgentMetrics"]

# name -> (kind, unit, description, the DeliveryStats reading). Counters are cumulative since the client started.
_Reading = Callable[[DeliveryStats], "float | int | None"]
_INSTRUMENTS: dict[str, tuple[str, str, str, _Reading]] = {
    "promptstream.events.tracked": ("counter", "{event}", "Events accepted by track_*", lambda s: s.tracked),
    "promptstream.events.sent": ("counter", "{event}", "Events acknowledged by the server", lambda s: s.sent),
    "promptstream.events.dropped": (
        "counter",
        "{event}",
        "Events lost because the in-memory queue or the spool was full",
        lambda s: s.dropped,
    ),
    "promptstream.events.rejected": ("counter", "{event}", "Events the server refused", lambda s: s.rejected),
    "promptstream.events.retries": (
        "counter",
        "{attempt}",
        "Delivery attempts that failed and were retried",
        lambda s: s.retries,
    ),
    "promptstream.events.dead_lettered": (
        "gauge",
        "{event}",
        "Events in the spool's dead-letter table now",
        lambda s: s.dead_lettered,
    ),
    "promptstream.queue.depth": ("gauge", "{event}", "Events in memory, not yet spooled", lambda s: s.queued),
    "promptstream.spool.pending": (
        "gauge",
        "{event}",
        "Events in the spool not yet acknowledged by the server",
        lambda s: s.pending,
    ),
    "promptstream.spool.size": (
        "gauge",
        "By",
        "Bytes of event payload in the spool (pending and dead letters)",
        lambda s: s.spool_bytes,
    ),
    "promptstream.spool.oldest_pending_age": (
        "gauge",
        "s",
        "Age of the oldest event waiting in the spool (absent when nothing waits)",
        lambda s: s.oldest_pending_age,
    ),
    "promptstream.delivery.latency": (
        "gauge",
        "s",
        "Seconds the last acknowledged batch took, request to answer",
        lambda s: s.delivery_latency,
    ),
    "promptstream.delivery.paused": (
        "gauge",
        "1",
        "1 while delivery is paused (a refused API key, not a PromptStream server)",
        lambda s: int(s.paused),
    ),
}
METRIC_NAMES: tuple[str, ...] = tuple(_INSTRUMENTS)

# One collection reads the instruments one after another, in the order they were created: the first refreshes the
# snapshot of each client, the others reuse it (one stats() per client per collection), unless it has grown stale.
_SNAPSHOT_REUSE_SECONDS = 1.0


class AgentMetrics:
    """The instruments of one ``OpenTelemetry`` instance, observing every client bound to it (each with a
    ``promptstream.server`` attribute: its base URL, redacted). Clients are held weakly: a client that is gone
    stops being reported."""

    def __init__(self, meter_provider: MeterProvider | None) -> None:
        meter = metrics.get_meter("promptstream", __version__, meter_provider=meter_provider)
        self._clients: weakref.WeakKeyDictionary[Any, tuple[float, DeliveryStats]] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        for position, (name, (kind, unit, description, reading)) in enumerate(_INSTRUMENTS.items()):
            callback = self._callback(reading, refresh=position == 0)
            if kind == "counter":
                meter.create_observable_counter(name, [callback], unit=unit, description=description)
            else:
                meter.create_observable_gauge(name, [callback], unit=unit, description=description)

    def add(self, client: Any) -> None:
        with self._lock:
            self._clients[client] = (-_SNAPSHOT_REUSE_SECONDS * 2, DeliveryStats())

    def _callback(self, reading: _Reading, *, refresh: bool) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            observations = []
            for client, stats in self._snapshots(refresh):
                value = reading(stats)
                if value is not None:
                    observations.append(Observation(value, {"promptstream.server": redact_url(client.base_url)}))
            return observations

        return observe

    def _snapshots(self, refresh: bool) -> list[tuple[Any, DeliveryStats]]:
        now = time.monotonic()
        with self._lock:
            known = list(self._clients.items())
        snapshots = []
        for client, (taken, stats) in known:
            if refresh or now - taken > _SNAPSHOT_REUSE_SECONDS:
                stats = client.stats()  # never raises; reads counters and the spool's counts, no network
                with self._lock:
                    self._clients[client] = (now, stats)
            snapshots.append((client, stats))
        return snapshots
