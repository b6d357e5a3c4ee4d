"""OpenTelemetry: PromptStream's runs in your traces, its events joined to them, its agent on your dashboards.

Needs ``pip install 'promptstream[otel]' opentelemetry-sdk opentelemetry-exporter-otlp-proto-http``. The exporters
read the standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` (e.g. ``http://collector:4318``) and ``OTEL_SERVICE_NAME``.
"""

from __future__ import annotations

import os

from opentelemetry import metrics, trace
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from promptstream import PromptStreamClient
from promptstream.otel import OpenTelemetry

# The application's OpenTelemetry SDK, set up once at start (or by `opentelemetry-instrument`): PromptStream only
# uses the API, so its spans and metrics go wherever the rest of the app's do.
tracer_provider = TracerProvider()
tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
trace.set_tracer_provider(tracer_provider)
meter_provider = MeterProvider(metric_readers=[PeriodicExportingMetricReader(OTLPMetricExporter())])
metrics.set_meter_provider(meter_provider)

# One way to turn it on: the client's `instrumentation=` option.
client = PromptStreamClient(instrumentation=OpenTelemetry())
tracer = trace.get_tracer("greetings-app")


def greet(name: str, user_id: str) -> str:
    """A request handler: its span is the parent of the run's span (and, through `traceparent`, of the server's);
    the click tracked inside it carries its trace and span ids, so the event joins this request."""
    with tracer.start_as_current_span("greet"):
        run = client.run_prompt(os.environ["GREETING_PROMPT_ID"], {"name": name}, external_user_id=user_id)
        client.track_click(run.run_id, run.experiment_id, label="shown")
        return run.output


def shutdown() -> None:
    """At exit: deliver the events, then export what the providers still hold."""
    client.close()
    tracer_provider.shutdown()
    meter_provider.shutdown()
