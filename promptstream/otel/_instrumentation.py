"""``OpenTelemetry``: the ``Instrumentation`` the SDK ships (promptstream/_instrumentation.py is the seam)."""

from __future__ import annotations

from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import SpanKind, Status, StatusCode, TracerProvider

from .._models import RunResponse
from .._version import __version__
from ._metrics import AgentMetrics

__all__ = ["OpenTelemetry"]

# GenAI semantic conventions (https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-spans/): a run renders a
# prompt version for the inputs and returns one text, which is what "text_completion" names.
OPERATION = "text_completion"
PROVIDER = "promptstream"
_INSTRUMENTATION_NAME = "promptstream"


class OpenTelemetry:
    """Traces and metrics for a PromptStream client, through the OpenTelemetry API. Pass it as the client's
    ``instrumentation=``; one instance may serve several clients.

    Args:
        tracer_provider: Where spans go; default the global one (``opentelemetry.trace.set_tracer_provider``).
        meter_provider: Where the agent's metrics go; default the global one.
        propagator: How trace context is written on the run request; default the global one (W3C
            ``traceparent``/``tracestate`` and baggage unless your application configured others).

    Example:
        ```python
        # doc: no-run: needs an OpenTelemetry SDK configured by the application
        client = PromptStreamClient(instrumentation=OpenTelemetry(tracer_provider=provider))
        ```
    """

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        propagator: TextMapPropagator | None = None,
    ) -> None:
        self._tracer = trace.get_tracer(_INSTRUMENTATION_NAME, __version__, tracer_provider=tracer_provider)
        self._propagator = propagator
        self._metrics = AgentMetrics(meter_provider)

    def __repr__(self) -> str:
        return "OpenTelemetry()"

    # -- the Instrumentation protocol ------------------------------------------------------------------------------

    def bind(self, client: Any) -> None:
        """Report ``client``'s agent through this instance's observable instruments."""
        self._metrics.add(client)

    def current_span_ids(self) -> tuple[str, str] | None:
        span = trace.get_current_span()
        if not span.is_recording():
            return None
        context = span.get_span_context()
        return format(context.trace_id, "032x"), format(context.span_id, "016x")

    def run_started(self, prompt_id: str, *, server_address: str) -> RunSpan:
        return RunSpan(self, prompt_id, server_address)

    def _inject(self, headers: dict[str, str], context: otel_context.Context) -> None:
        if self._propagator is None:
            propagate.inject(headers, context=context)
        else:
            self._propagator.inject(headers, context=context)


class RunSpan:
    """One ``run_prompt`` as a CLIENT span, current while the request runs (so an httpx instrumentation nests under
    it), its context in ``headers`` for the server."""

    def __init__(self, owner: OpenTelemetry, prompt_id: str, base_url: str) -> None:
        self._owner = owner
        self._prompt_id = prompt_id
        self._base_url = base_url
        self.headers: dict[str, str] = {}
        self._span: trace.Span = trace.INVALID_SPAN
        self._token: object | None = None

    def __enter__(self) -> RunSpan:
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": OPERATION,
            "gen_ai.provider.name": PROVIDER,
            "promptstream.prompt.id": self._prompt_id,
        }
        address = urlsplit(self._base_url)
        if address.hostname:
            attributes["server.address"] = address.hostname
            port = address.port or (443 if address.scheme == "https" else 80)
            attributes["server.port"] = port
        self._span = self._owner._tracer.start_span(OPERATION, kind=SpanKind.CLIENT, attributes=attributes)
        context = trace.set_span_in_context(self._span)
        self._token = otel_context.attach(context)
        self._owner._inject(self.headers, context)
        return self

    def succeeded(self, run: RunResponse) -> None:
        span = self._span
        if not span.is_recording():
            return
        span.set_attribute("gen_ai.response.id", run.run_id)
        span.set_attribute("promptstream.run.id", run.run_id)
        span.set_attribute("promptstream.experiment.id", run.experiment_id)
        span.set_attribute("promptstream.variant", run.variant_assigned)
        if run.is_fallback:
            span.set_attribute("promptstream.is_fallback", True)
        # Optional fields of newer servers (RunResponse may not have them): read where present and not None.
        model = getattr(run, "model", None)
        if isinstance(model, str) and model:
            span.set_attribute("gen_ai.response.model", model)
            span.update_name(f"{OPERATION} {model}")
        for field, attribute in (
            ("input_tokens", "gen_ai.usage.input_tokens"),
            ("output_tokens", "gen_ai.usage.output_tokens"),
        ):
            value = getattr(run, field, None)
            if isinstance(value, int) and not isinstance(value, bool):
                span.set_attribute(attribute, value)
        for field, attribute in (("latency_ms", "promptstream.latency_ms"), ("cost_usd", "promptstream.cost_usd")):
            value = getattr(run, field, None)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                span.set_attribute(attribute, float(value))

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if exc is not None and self._span.is_recording():
                self._span.set_attribute("error.type", type(exc).__qualname__)
                self._span.record_exception(exc, escaped=True)
                self._span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        finally:
            if self._token is not None:
                otel_context.detach(self._token)  # type: ignore[arg-type]
                self._token = None
            self._span.end()
