"""OpenTelemetry for PromptStream (the ``otel`` extra: ``pip install 'promptstream[otel]'``).

``OpenTelemetry()`` given to a client as ``instrumentation=`` (the one way to turn it on) makes:

- a client span per ``run_prompt`` (sync and async) after the OpenTelemetry GenAI semantic conventions
  (``gen_ai.operation.name``, ``gen_ai.provider.name``, ``gen_ai.response.id``, ``gen_ai.response.model`` and
  ``gen_ai.usage.input_tokens`` / ``output_tokens`` when the server returns them, ``server.address``/``port``,
  ``error.type``) plus ``promptstream.prompt.id``, ``promptstream.run.id``, ``promptstream.experiment.id``,
  ``promptstream.variant``; its trace context goes to the server as W3C ``traceparent``/``tracestate``, and the
  reference server continues the trace with a server span;
- ``track_*`` events made inside a recording span carry its ``trace_id`` and ``span_id``;
- the tracking agent's health (``client.stats()``) as observable metrics: ``promptstream.events.*``,
  ``promptstream.queue.depth``, ``promptstream.spool.*``, ``promptstream.delivery.*``.

It uses the OpenTelemetry API only: the tracer, meter and propagator are your application's (the global ones unless
you pass providers), so spans and metrics go wherever your SDK exports them.

Example:
    ```python
    # doc: no-run: needs an OpenTelemetry SDK configured by the application
    from promptstream import PromptStreamClient
    from promptstream.otel import OpenTelemetry

    client = PromptStreamClient(instrumentation=OpenTelemetry())
    ```
"""

from __future__ import annotations

try:
    import opentelemetry.trace  # noqa: F401
except ImportError:  # pragma: no cover - depends on the environment
    raise ImportError("promptstream.otel needs OpenTelemetry's API: pip install 'promptstream[otel]'") from None

from ._instrumentation import OpenTelemetry
from ._metrics import METRIC_NAMES

__all__ = ["METRIC_NAMES", "OpenTelemetry"]
