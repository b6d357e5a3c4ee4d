"""OpenTelemetry end to end, through the real OTLP/HTTP exporters to a real OTLP receiver (tests/otlp_receiver.py
decodes the protobuf a collector would): the docs' recipe (docs/examples/otel_tracing.py) runs in its own process
against the reference server, and its trace arrives in one piece, its click is stored joined to it, and the agent's
metrics are exported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.exporter.otlp.proto.http")

from opentelemetry.trace import SpanKind

from .helpers import REPO_ROOT, client_env, run_child
from .otel_helpers import fresh_spans, one
from .otlp_receiver import OtlpReceiver, attributes

EXAMPLES = REPO_ROOT / "docs" / "examples"


@pytest.fixture
def spans() -> Any:
    """The spans of the reference server, which runs in this process."""
    return fresh_spans()


def test_the_recipe_exports_a_joined_trace_and_the_agent_metrics_over_otlp(
    server: Any, spool_dir: Path, spans: Any
) -> None:
    prompt = server.create_prompt()
    with OtlpReceiver() as receiver:
        env = {
            **client_env(server.url, spool_dir),
            "PYTHONPATH": f"{EXAMPLES}:{REPO_ROOT}",
            "GREETING_PROMPT_ID": prompt["prompt_id"],
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_SERVICE_NAME": "greetings-app",
        }
        child = run_child("import otel_tracing\nprint(otel_tracing.greet('Ada', 'ada'))\notel_tracing.shutdown()", env)
        assert child.returncode == 0, child.stderr
        assert child.stdout.strip() == "Hello Ada!"
        received = {span.name: span for span in receiver.spans()}
        metric_names = receiver.metric_names()
    handler, run_span = received["greet"], received["text_completion"]
    assert run_span.kind == SpanKind.CLIENT.value + 1  # protobuf's SPAN_KIND_CLIENT (the enum starts at UNSPECIFIED)
    assert run_span.trace_id == handler.trace_id and run_span.parent_span_id == handler.span_id
    run_attributes = attributes(run_span)
    assert run_attributes["gen_ai.operation.name"] == "text_completion"
    assert run_attributes["promptstream.prompt.id"] == prompt["prompt_id"]
    run_id = run_attributes["promptstream.run.id"]
    # the server (in this process) continued the trace from the traceparent the child's client sent
    server_span = one(spans, SpanKind.SERVER, **{"http.route": "/v1/prompts/{prompt_id}/runs"})
    assert server_span.context.trace_id == int.from_bytes(run_span.trace_id, "big")
    assert server_span.parent is not None and server_span.parent.span_id == int.from_bytes(run_span.span_id, "big")
    # the click tracked in the handler's span is stored with its ids
    db = server.database()
    try:
        stored = db.execute("SELECT prompt_run_id, trace_id, span_id FROM events").fetchall()
    finally:
        db.close()
    assert [tuple(row) for row in stored] == [(run_id, handler.trace_id.hex(), handler.span_id.hex())]
    assert {"promptstream.events.tracked", "promptstream.events.sent", "promptstream.spool.pending"} <= metric_names
