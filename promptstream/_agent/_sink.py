"""The seam between the client and whatever takes its events: ``track_*`` hand each validated event, encoded as
JSON bytes, to an ``EventSink``. The tracking agent is the production sink; ``promptstream.testing``'s recorder is
another. A client is given one with ``PromptStreamClient(event_sink=...)``."""

from __future__ import annotations

from typing import Protocol

from .._models import DeliveryStats

__all__ = ["EventSink"]


class EventSink(Protocol):
    """Where ``track_*`` put events. ``enqueue`` is on the caller's fast path: no I/O, no lock held during I/O,
    never raises. ``flush``, ``close`` and ``stats`` back the client's methods of the same names.

    Example:
        ```python
        class PrintingSink:
            def enqueue(self, event: bytes) -> None:
                print(event.decode())

            def flush(self, timeout: float | None = None) -> bool:
                return True

            def close(self, timeout: float | None = None) -> bool:
                return True

            def stats(self) -> DeliveryStats:
                return DeliveryStats()

        client = PromptStreamClient(api_key="ps_test", event_sink=PrintingSink())
        client.track_click("run-1", "exp-1", "cta")  # printed, not sent
        ```
    """

    def enqueue(self, event: bytes) -> None:
        """Take one event (a JSON object, as the wire carries it); called on the caller's thread.

        Example:
            ```python
            sink.enqueue(
                b'{"event_id": "0192f0c4-7a3e-7c11-9d2e-5b8f3a1c2d4e", "type": "click", "prompt_run_id": "run-1",'
                b' "experiment_id": "exp-1", "label": "cta", "timestamp": "2026-12-02T03:00:00.000Z"}'
            )
            ```
        """
        ...

    def flush(self, timeout: float | None = None) -> bool:
        """Deliver what was enqueued; True when nothing is left, False at the timeout.

        Example:
            ```python
            assert sink.flush(timeout=5.0)
            ```
        """
        ...

    def close(self, timeout: float | None = None) -> bool:
        """Flush, then release everything; True when nothing was left behind.

        Example:
            ```python
            sink.close(timeout=5.0)
            ```
        """
        ...

    def stats(self) -> DeliveryStats:
        """The counters ``client.stats()`` returns.

        Example:
            ```python
            print(sink.stats().tracked)
            ```
        """
        ...
