"""The seam a tracing integration plugs into: the client's ``instrumentation=`` option. ``promptstream.otel``'s
``OpenTelemetry`` is the one the SDK ships; the core only knows this protocol and never imports OpenTelemetry.

What the client does with one:
- once, at construction, ``bind(client)`` (an integration registers its metrics there);
- in every ``track_*``, ``current_span_ids()``: the (trace id, span id) the event carries, or None;
- around every ``run_prompt``, ``run_started(...)``: a context manager whose ``headers`` go on the request (W3C
  ``traceparent``) and that hears how the run ended (``succeeded(run)``, or the exception leaving the block).

Without the option the hot path pays one attribute test (docs/benchmarks.md measures it).
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ._models import RunResponse

__all__ = ["NO_RUN_OBSERVER", "Instrumentation", "RunObserver"]


class RunObserver(Protocol):
    """One ``run_prompt`` call as an integration sees it (a span, for OpenTelemetry)."""

    headers: dict[str, str]
    """Headers to send with the run's request (trace context); every retry carries the same ones."""

    def __enter__(self) -> RunObserver: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def succeeded(self, run: RunResponse) -> None:
        """The run the call returns (a fallback run included)."""


class Instrumentation(Protocol):
    """What ``PromptStreamClient(instrumentation=...)`` accepts.

    Example:
        ```python
        # doc: no-run: needs the otel extra
        from promptstream.otel import OpenTelemetry

        client = PromptStreamClient(instrumentation=OpenTelemetry())
        ```
    """

    def bind(self, client: Any) -> None:
        """Called once by the client's constructor, with the client."""

    def current_span_ids(self) -> tuple[str, str] | None:
        """The (trace id, span id) of the span active in the caller, as lowercase hex, or None. Called by every
        ``track_*``: keep it cheap."""

    def run_started(self, prompt_id: str, *, server_address: str) -> RunObserver:
        """A new observer for one ``run_prompt`` call."""


class _NoRunObserver:
    """What ``run_prompt`` uses without an integration: no headers, nothing observed."""

    headers: dict[str, str] = {}

    def __enter__(self) -> _NoRunObserver:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    def succeeded(self, run: RunResponse) -> None:
        return None


NO_RUN_OBSERVER: RunObserver = _NoRunObserver()
