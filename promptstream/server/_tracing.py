"""The server's side of trace context: with OpenTelemetry's API installed on the server, every request gets a SERVER
span that continues the caller's trace (the W3C ``traceparent``/``tracestate`` headers a PromptStream client sends
from ``run_prompt`` when it is instrumented; docs/protocol.md). Without the API, nothing here runs.

Spans go to the global tracer provider: the operator configures it (for example by running the server under
``opentelemetry-instrument promptstream serve``); with the API alone they are non-recording and cost little. Only the
OpenTelemetry API is used here, never an SDK's internals, and never the PromptStream SDK's.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["traced"]


def traced(app: ASGIApp) -> ASGIApp:
    """``app`` with a server span around each HTTP request, or ``app`` itself when OpenTelemetry is not installed.

    Example:
        ```python
        app = traced(Starlette(routes=routes))
        ```
    """
    try:
        from opentelemetry import trace  # noqa: F401
    except ImportError:
        return app
    return TracingMiddleware(app)


class TracingMiddleware:
    """A SERVER span per request named ``METHOD route`` (``POST /v1/prompts/{prompt_id}/runs``), child of the
    caller's span when the request carries one, with the HTTP semantic conventions' attributes and the request id."""

    def __init__(self, app: ASGIApp) -> None:
        from opentelemetry import trace

        self.app = app
        self._tracer = trace.get_tracer("promptstream.server")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from opentelemetry import context, propagate, trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        carrier = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope.get("headers", [])}
        parent = propagate.extract(carrier)
        method = scope.get("method", "GET")
        span = self._tracer.start_span(
            method,
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": scope.get("path", ""), "url.scheme": "http"},
        )
        status = 0
        ended = False

        async def send_with_status(message: Message) -> None:
            nonlocal status, ended
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body", False) and not ended:
                # ended before the last byte leaves: a client that has its answer finds the server's span exported
                ended = True
                _finish(span, scope, status, Status, StatusCode)
            await send(message)

        token = context.attach(trace.set_span_in_context(span, parent))
        try:
            await self.app(scope, receive, send_with_status)
        except BaseException as exc:
            if not ended:
                span.record_exception(exc)
                span.set_attribute("error.type", type(exc).__qualname__)
            raise
        finally:
            context.detach(token)
            if not ended:
                _finish(span, scope, status, Status, StatusCode)

    def __repr__(self) -> str:
        return f"TracingMiddleware({self.app!r})"


def _finish(span: Any, scope: Scope, status: int, status_type: Any, status_code: Any) -> None:
    route = _route_template(scope)
    if route is not None:
        span.set_attribute("http.route", route)
        span.update_name(f"{scope.get('method', 'GET')} {route}")
    request_id = scope.get("state", {}).get("request_id")
    if request_id:
        span.set_attribute("promptstream.request_id", request_id)
    if status:
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_attribute("error.type", str(status))
            span.set_status(status_type(status_code.ERROR))
    span.end()


def _route_template(scope: Scope) -> str | None:
    """The matched route's template (Starlette leaves the route in the scope), never the raw path: ids in a span
    name would make one name per prompt."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else None
