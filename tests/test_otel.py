"""OpenTelemetry (issue 18 §1), with the OpenTelemetry SDK's in-memory exporters against the real reference server on
loopback: run spans after the GenAI conventions, trace context the server continues, events stamped with the span
they were tracked in and stored with it, and the agent's health as metrics. The OTLP path is in test_otel_otlp.py."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, StatusCode

from promptstream import (
    APIConnectionError,
    AsyncPromptStreamClient,
    ConfigurationError,
    Event,
    NotFoundError,
    PromptStreamClient,
)
from promptstream.otel import METRIC_NAMES, OpenTelemetry

from .helpers import API_KEY, fast, wait_until
from .otel_helpers import fresh_spans, one


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return fresh_spans()


@pytest.fixture
def metric_reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def otel_client(server: Any, spool_dir: Path, metric_reader: InMemoryMetricReader, spans: InMemorySpanExporter) -> Any:
    client = PromptStreamClient(
        API_KEY,
        base_url=server.url,
        agent_config=fast(spool_dir),
        instrumentation=OpenTelemetry(meter_provider=MeterProvider(metric_readers=[metric_reader])),
    )
    yield client
    client.close(timeout=2)


def hex_id(value: int, digits: int) -> str:
    return format(value, f"0{digits}x")


def stored_trace_context(server: Any) -> dict[str, tuple[str | None, str | None]]:
    db = server.database()
    try:
        return {row[0]: (row[1], row[2]) for row in db.execute("SELECT event_id, trace_id, span_id FROM events")}
    finally:
        db.close()


# -- run_prompt: a client span, its context sent, the server's span its child ---------------------------------------


def check_run_trace(spans: InMemorySpanExporter, prompt_id: str, run: Any, parent: ReadableSpan) -> None:
    client_span = one(spans, SpanKind.CLIENT, **{"promptstream.run.id": run.run_id})
    attributes = dict(client_span.attributes or {})
    assert attributes["gen_ai.operation.name"] == "text_completion"
    assert attributes["gen_ai.provider.name"] == "promptstream"
    assert attributes["gen_ai.response.id"] == run.run_id
    assert attributes["promptstream.prompt.id"] == prompt_id
    assert attributes["promptstream.experiment.id"] == run.experiment_id
    assert attributes["promptstream.variant"] == run.variant_assigned
    assert attributes["server.address"] == "127.0.0.1" and isinstance(attributes["server.port"], int)
    assert client_span.status.status_code != StatusCode.ERROR
    # the app's span is the run's parent, and the server's span (made from the traceparent it received) the child
    assert client_span.parent is not None and client_span.parent.span_id == parent.context.span_id
    assert client_span.context.trace_id == parent.context.trace_id
    server_span = one(spans, SpanKind.SERVER, **{"http.route": "/v1/prompts/{prompt_id}/runs"})
    assert server_span.context.trace_id == client_span.context.trace_id
    assert server_span.parent is not None and server_span.parent.is_remote
    assert server_span.parent.span_id == client_span.context.span_id
    assert server_span.name == "POST /v1/prompts/{prompt_id}/runs"
    assert (server_span.attributes or {})["http.response.status_code"] == 200


def test_run_prompt_is_a_genai_client_span_and_the_server_continues_its_trace(
    server: Any, otel_client: PromptStreamClient, spans: InMemorySpanExporter
) -> None:
    prompt = server.create_prompt()
    with trace.get_tracer("app").start_as_current_span("handler") as handler:
        run = otel_client.run_prompt(prompt["prompt_id"], {"name": "Ada"}, external_user_id="ada")
    assert isinstance(handler, ReadableSpan)
    check_run_trace(spans, prompt["prompt_id"], run, handler)


def test_async_run_prompt_is_traced_the_same_way(server: Any, spool_dir: Path, spans: InMemorySpanExporter) -> None:
    prompt = server.create_prompt()

    async def main() -> tuple[Any, Any, Any]:
        async with AsyncPromptStreamClient(
            API_KEY, base_url=server.url, agent_config=fast(spool_dir), instrumentation=OpenTelemetry()
        ) as client:
            with trace.get_tracer("app").start_as_current_span("handler") as handler:
                run = await client.run_prompt(prompt["prompt_id"], {"name": "Ada"})
                event_id = client.track_conversion(run.run_id, run.experiment_id)
                after = trace.get_current_span()
            assert await client.flush(timeout=10)
            return run, handler, (event_id, after)

    run, handler, (event_id, after) = asyncio.run(main())
    assert after is handler  # the run's span was current only during the call
    check_run_trace(spans, prompt["prompt_id"], run, handler)
    context = handler.get_span_context()
    assert stored_trace_context(server)[event_id] == (hex_id(context.trace_id, 32), hex_id(context.span_id, 16))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prompt_id=st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=40))
def test_a_failed_run_is_an_error_span_with_the_exception_type(
    server: Any, otel_client: PromptStreamClient, spans: InMemorySpanExporter, prompt_id: str
) -> None:
    spans.clear()
    with pytest.raises(NotFoundError) as raised:  # PromptNotFoundError, or a plain 404 for an id with "/" in it
        otel_client.run_prompt(prompt_id, {"name": "Ada"}, max_retries=0)
    span = one(spans, SpanKind.CLIENT)
    assert span.status.status_code == StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == type(raised.value).__name__
    assert (span.attributes or {})["promptstream.prompt.id"] == prompt_id
    assert [e.name for e in span.events] == ["exception"]
    assert (span.events[0].attributes or {})["exception.type"].endswith(type(raised.value).__name__)
    server_span = one(spans, SpanKind.SERVER)
    assert server_span.parent is not None and server_span.parent.span_id == span.context.span_id
    assert (server_span.attributes or {})["http.response.status_code"] == 404


def test_a_connection_failure_is_recorded_and_a_fallback_run_is_marked(
    spool_dir: Path, spans: InMemorySpanExporter
) -> None:
    from .helpers import free_port

    with PromptStreamClient(
        API_KEY,
        base_url=f"http://127.0.0.1:{free_port()}",
        agent_config=fast(spool_dir),
        instrumentation=OpenTelemetry(),
    ) as client:
        with pytest.raises(APIConnectionError) as raised:
            client.run_prompt("p", {}, max_retries=0)
        offline = client.run_prompt("p", {}, max_retries=0, fallback="hello")
    failed, fallback = sorted(
        (s for s in spans.get_finished_spans() if s.kind == SpanKind.CLIENT), key=lambda s: s.start_time or 0
    )
    assert (failed.attributes or {})["error.type"] == type(raised.value).__name__ == "APIConnectionError"
    assert failed.status.status_code == StatusCode.ERROR
    assert (fallback.attributes or {})["promptstream.is_fallback"] is True
    assert (fallback.attributes or {})["promptstream.run.id"] == offline.run_id


def test_token_usage_is_recorded_when_the_server_returns_it(
    server: Any, spool_dir: Path, spans: InMemorySpanExporter
) -> None:
    """Servers that report usage send input_tokens/output_tokens (and the model) with the run; older ones do not.
    A transport in front of the real server adds them, as such a server would."""
    prompt = server.create_prompt()

    def add_usage(response: httpx.Response) -> None:
        if response.request.url.path.endswith("/runs") and response.status_code == 200:
            response.read()
            body = {**msgspec.json.decode(response.content), "input_tokens": 12, "output_tokens": 34, "model": "m-1"}
            response._content = msgspec.json.encode(body)

    http = httpx.Client(event_hooks={"response": [add_usage]})
    with PromptStreamClient(
        API_KEY, base_url=server.url, agent_config=fast(spool_dir), http_client=http, instrumentation=OpenTelemetry()
    ) as client:
        run = client.run_prompt(prompt["prompt_id"], {"name": "Ada"})
    http.close()
    span = one(spans, SpanKind.CLIENT)
    attributes = dict(span.attributes or {})
    if getattr(run, "input_tokens", None) is not None:  # RunResponse carries usage (helper "results")
        assert attributes["gen_ai.usage.input_tokens"] == 12 and attributes["gen_ai.usage.output_tokens"] == 34
    else:
        assert "gen_ai.usage.input_tokens" not in attributes


def test_without_instrumentation_no_trace_context_is_sent_or_stamped(
    server: Any, client: PromptStreamClient, spans: InMemorySpanExporter
) -> None:
    prompt = server.create_prompt()
    with trace.get_tracer("app").start_as_current_span("handler"):
        run = client.run_prompt(prompt["prompt_id"], {"name": "Ada"})
        event_id = client.track_click(run.run_id, run.experiment_id, label="copy")
    assert client.flush(timeout=10)
    assert not [s for s in spans.get_finished_spans() if s.kind == SpanKind.CLIENT]
    server_span = one(spans, SpanKind.SERVER, **{"http.route": "/v1/prompts/{prompt_id}/runs"})
    assert server_span.parent is None  # no traceparent went out
    assert stored_trace_context(server)[event_id] == (None, None)


# -- track_*: the span's ids on the event, stored by the server ------------------------------------------------------


def test_every_track_call_inside_a_recording_span_carries_its_ids_to_the_database(
    server: Any, otel_client: PromptStreamClient
) -> None:
    prompt = server.create_prompt()
    run = otel_client.run_prompt(prompt["prompt_id"], {"name": "Ada"})
    args = (run.run_id, run.experiment_id)
    calls = [
        lambda: otel_client.track_click(*args, label="copy", metadata={"n": 1}),
        lambda: otel_client.track_conversion(*args),
        lambda: otel_client.track_feedback(*args, thumbs_up=True),
        lambda: otel_client.track_rating(*args, rating=4.5),
        lambda: otel_client.track_engagement(*args, engagement_score=3.0),
    ]
    expected: dict[str, tuple[str | None, str | None]] = {}
    tracer = trace.get_tracer("app")
    for call in calls:
        with tracer.start_as_current_span("request") as span:
            with tracer.start_as_current_span("inner") as inner:
                context = inner.get_span_context()
                expected[call()] = (hex_id(context.trace_id, 32), hex_id(context.span_id, 16))
            assert span.get_span_context().trace_id == context.trace_id
        expected[call()] = (None, None)  # outside any span
    unsampled = TracerProvider(sampler=ALWAYS_OFF).get_tracer("app")
    with unsampled.start_as_current_span("not recorded"):
        expected[otel_client.track_conversion(*args)] = (None, None)
    assert otel_client.flush(timeout=10)
    assert stored_trace_context(server) == expected


class _BrokenInstrumentation(OpenTelemetry):
    def __init__(self, ids: Any) -> None:
        super().__init__()
        self._ids = ids

    def current_span_ids(self) -> Any:
        if isinstance(self._ids, Exception):
            raise self._ids
        return self._ids


@pytest.mark.parametrize(
    "ids",
    [("A" * 32, "1" * 16), ("0" * 32, "1" * 16), ("1" * 32, "0" * 16), ("1" * 31, "1" * 16), (1, 2), RuntimeError()],
)
def test_an_integration_that_hands_back_bad_ids_costs_the_event_its_ids_not_the_event(
    server: Any, client_factory: Any, ids: Any
) -> None:
    from .helpers import make_run

    run_id, experiment_id = make_run(server)
    client = client_factory(server.url, instrumentation=_BrokenInstrumentation(ids))
    event_id = client.track_click(run_id, experiment_id, label="x")
    assert client.flush(timeout=10)
    assert stored_trace_context(server) == {event_id: (None, None)}


def test_instrumentation_must_be_an_instrumentation() -> None:
    with pytest.raises(ConfigurationError, match="instrumentation"):
        PromptStreamClient(API_KEY, disabled=True, instrumentation=object())  # type: ignore[arg-type]


# -- the wire: trace_id/span_id validated by the server (and by the SDK for before_send) ----------------------------

hex_digits = "0123456789abcdef"
good_trace = st.text(hex_digits, min_size=32, max_size=32).filter(lambda t: t != "0" * 32)
good_span = st.text(hex_digits, min_size=16, max_size=16).filter(lambda t: t != "0" * 16)
bad_trace = st.one_of(
    st.text(hex_digits, min_size=0, max_size=40).filter(lambda t: len(t) != 32),
    st.text("ABCDEFghijz-_ ", min_size=32, max_size=32),
    st.just("0" * 32),
    st.integers(),
    st.just(hex_digits * 2 + "\n"),
)
bad_span = st.one_of(
    st.text(hex_digits, min_size=0, max_size=20).filter(lambda t: len(t) != 16),
    st.text("ABCDEF", min_size=16, max_size=16),
    st.just("0" * 16),
)


def _event(run_id: str, experiment_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "type": "click",
        "prompt_run_id": run_id,
        "experiment_id": experiment_id,
        "timestamp": "2026-12-02T03:00:00.000Z",
        "label": "x",
        **fields,
    }


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    trace_id=good_trace,
    span_id=good_span,
    bad=st.one_of(
        st.tuples(bad_trace, good_span),
        st.tuples(good_trace, bad_span),
        st.tuples(good_trace, st.none()),
        st.tuples(st.none(), good_span),
    ),
)
def test_the_server_stores_valid_trace_context_and_rejects_bad_ones_alone(
    server: Any, trace_id: str, span_id: str, bad: tuple[Any, Any]
) -> None:
    from .helpers import make_run

    run_id, experiment_id = make_run(server)
    good = _event(run_id, experiment_id, trace_id=trace_id, span_id=span_id)
    fields = {k: v for k, v in zip(("trace_id", "span_id"), bad, strict=True) if v is not None}
    refused = _event(run_id, experiment_id, **fields)
    answer = httpx.post(
        f"{server.url}/v1/events/batch",
        json={"sent_at": "2026-12-02T03:00:00.000Z", "events": [refused, good]},
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["accepted"] == 1 and [r["index"] for r in body["rejected"]] == [0]
    stored = stored_trace_context(server)
    assert stored[good["event_id"]] == (trace_id, span_id) and refused["event_id"] not in stored


@settings(max_examples=25, deadline=None)
@given(trace_id=bad_trace, span_id=good_span)
def test_before_send_cannot_set_a_trace_context_the_protocol_refuses(trace_id: Any, span_id: str) -> None:
    from promptstream._privacy import apply_before_send

    def set_ids(event: Event) -> Event:
        return msgspec.structs.replace(event, trace_id=trace_id, span_id=span_id)

    payload = msgspec.json.encode(
        Event(event_id=str(uuid.uuid4()), type="click", prompt_run_id="r", experiment_id="e", timestamp="t", label="x")
    )
    outcome = apply_before_send(set_ids, [payload])
    assert outcome.kept == [] and len(outcome.errors) == 1


# -- metrics: the agent's health through observable instruments -------------------------------------------------------


def _metric_points(reader: InMemoryMetricReader) -> dict[str, Any]:
    data = reader.get_metrics_data()
    points: dict[str, Any] = {}
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points[metric.name] = [(p.value, dict(p.attributes or {})) for p in metric.data.data_points]
    return points


def test_the_agents_health_is_observed_from_stats(
    server: Any, otel_client: PromptStreamClient, metric_reader: InMemoryMetricReader
) -> None:
    from .helpers import make_run

    run_id, experiment_id = make_run(server)
    for number in range(7):
        otel_client.track_rating(run_id, experiment_id, rating=float(number))
    assert otel_client.flush(timeout=10)
    stats = otel_client.stats()
    points = _metric_points(metric_reader)
    assert set(METRIC_NAMES) - {"promptstream.spool.oldest_pending_age"} <= set(points)
    server_attribute = {"promptstream.server": server.url}
    assert points["promptstream.events.tracked"] == [(7, server_attribute)] and stats.tracked == 7
    assert points["promptstream.events.sent"] == [(7, server_attribute)]
    assert points["promptstream.spool.pending"] == [(0, server_attribute)]
    assert points["promptstream.events.dropped"] == [(0, server_attribute)]
    latency = points["promptstream.delivery.latency"][0][0]
    assert stats.delivery_latency is not None and 0 < latency < 10


def test_a_stuck_agent_shows_in_its_metrics(server: Any, spool_dir: Path, metric_reader: InMemoryMetricReader) -> None:
    from .helpers import make_run

    run_id, experiment_id = make_run(server)
    server.thread.stop()  # the server goes away: events wait in the spool
    client = PromptStreamClient(
        API_KEY,
        base_url=server.url,
        agent_config=fast(spool_dir),
        instrumentation=OpenTelemetry(meter_provider=MeterProvider(metric_readers=[metric_reader])),
    )
    try:
        for _ in range(5):
            client.track_click(run_id, experiment_id, label="x")
        assert wait_until(lambda: client.stats().retries > 0 and client.stats().pending == 5, timeout=15)
        points = _metric_points(metric_reader)
        assert points["promptstream.spool.pending"][0][0] == 5
        assert points["promptstream.spool.size"][0][0] > 0
        assert points["promptstream.spool.oldest_pending_age"][0][0] >= 0
        assert points["promptstream.events.retries"][0][0] > 0
        assert points["promptstream.events.sent"][0][0] == 0
    finally:
        client.close(timeout=0.5)


def test_the_recording_client_records_the_trace_context_of_its_events() -> None:
    from promptstream.testing import RecordingClient

    client = RecordingClient(instrumentation=OpenTelemetry())
    run = client.run_prompt("greeting", {"name": "Ada"})
    with TracerProvider().get_tracer("app").start_as_current_span("request") as span:
        client.track_click(run.run_id, run.experiment_id, label="copy")
    client.track_click(run.run_id, run.experiment_id, label="later")
    context = span.get_span_context()
    assert [(e.trace_id, e.span_id) for e in client.recorded_events] == [
        (hex_id(context.trace_id, 32), hex_id(context.span_id, 16)),
        (None, None),
    ]
