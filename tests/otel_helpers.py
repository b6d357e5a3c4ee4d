"""What the OpenTelemetry tests share: the process's one SDK tracer provider, with an in-memory exporter.

The reference server runs in the test process and traces through the global provider (as a deployed one would
through whatever the operator configured), and OpenTelemetry sets the global provider once per process: the tests
install one SDK provider, once, and clear its exporter per test."""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

_EXPORTER = InMemorySpanExporter()


def fresh_spans() -> InMemorySpanExporter:
    """The exporter of the global provider (installed on first use), emptied."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
    _EXPORTER.clear()
    return _EXPORTER


def one(spans: InMemorySpanExporter, kind: SpanKind, **attributes: Any) -> ReadableSpan:
    found = [
        s
        for s in spans.get_finished_spans()
        if s.kind == kind and all((s.attributes or {}).get(k) == v for k, v in attributes.items())
    ]
    assert len(found) == 1, [(s.name, s.kind, s.attributes) for s in spans.get_finished_spans()]
    return found[0]
