"""``PromptStreamClient``: synchronous prompt runs and management calls, and fire-and-forget event tracking."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

import httpx
import msgspec

from ._assign import Assignment, assign_request, decode_assignment
from ._base_client import CallOptions, ClientBase, decode_response
from ._errors import APIConnectionError
from ._fallback import check_fallback, fallback_run
from ._models import RunResponse
from ._resources import Experiments, Prompts
from ._results_models import ExperimentResults
from ._retry import RetrySchedule
from ._validation import check_timeout

__all__ = ["PromptStreamClient"]

_decode_run = msgspec.json.Decoder(RunResponse).decode
_decode_results = msgspec.json.Decoder(ExperimentResults).decode


class PromptStreamClient(ClientBase):
    """The PromptStream client: run prompts synchronously; track events without waiting.

    ``track_*`` validate their arguments, put the event on an in-memory queue and return its ``event_id``; a
    background agent spools events to a local SQLite file and delivers them (docs/delivery.md). Constructing a
    client does no I/O. One client per process: it owns threads and connections.

    Args:
        api_key: Your API key; default ``$PROMPTSTREAM_API_KEY``. Never logged, never in a ``repr``, an exception
            or a spool file name.
        base_url: The server; default ``$PROMPTSTREAM_BASE_URL``, else ``http://127.0.0.1:8700``.
        timeout: Per request and phase; a float sets every phase. Default 10 s, 5 s to connect.
        max_retries: Retries of ``run_prompt``, ``get_experiment_results`` and the management calls after a
            connection error, a timeout, 429, 502, 503 or 504 (0..10).
        default_headers: Extra HTTP headers sent with every request of this client (not ``Authorization`` or
            ``Idempotency-Key``: the SDK sets those).
        disabled: True (or ``$PROMPTSTREAM_DISABLED``): ``track_*`` validate and return an id, nothing is sent.
        spool: False keeps events in memory only (read-only file systems).
        spool_dir: Where the spool lives; default ``$PROMPTSTREAM_SPOOL_DIR``, else the user cache dir.
        max_spool_bytes: Cap on spooled event bytes; beyond it new events are dropped and counted.
        max_queue_size: Cap on events in memory waiting for the spooler.
        flush_interval: Seconds the sender lets events gather before sending a partial batch.
        batch_max_events: Events per request at most.
        shutdown_timeout: Seconds ``close()`` and the exit hook spend delivering what is left.
        encoding: ``"json"`` or ``"msgpack"`` for event batches.
        durable: True fsyncs every spool write (survives power loss, costs throughput).
        on_error: Called from the background with a ``PromptStreamError`` when events are rejected, delivery
            pauses, or the spool is unusable. What it raises is swallowed.
        before_send: ``before_send(event) -> Event | None``, run on the spooler thread: return the event, a
            changed copy, or None to drop it. An event whose hook raises is dropped, never sent unscrubbed.
        hash_user_ids: A secret salt (at least 16 bytes): every ``external_user_id`` is replaced by
            ``hash_user_id(id, salt)`` before it leaves the process.
        http_client: Your own ``httpx.Client`` (proxies, a custom CA, mTLS, event hooks, a transport). The SDK
            still owns the base URL, the ``Authorization`` header, timeouts and retries of each request; the rest
            is yours, and the SDK never closes it. The background sender uses it too, in this process.
        sender_http_client: ``AsyncPromptStreamClient`` only (``ConfigurationError`` here: this client's sender
            already uses ``http_client``).
        agent_config: Every agent setting at once (``AgentConfig``). The agent options above default to None, which
            means "as in agent_config (or its default)"; one given explicitly overrides agent_config's field.
        event_sink: Where ``track_*`` put their events instead of the tracking agent (an ``EventSink``: ``enqueue``
            gets each event as JSON bytes; ``flush``, ``close`` and ``stats`` back the client's). For test doubles
            such as ``promptstream.testing.RecordingClient``; no agent, spool or thread is started then.
        instrumentation: A tracing integration (an ``Instrumentation``), e.g. ``promptstream.otel.OpenTelemetry()``
            (the ``otel`` extra): a client span per ``run_prompt`` with its trace context sent to the server,
            ``track_*`` events stamped with the active span's ids, and the agent's health as metrics
            (docs/recipes.md, "OpenTelemetry"). None (the default) costs ``track_*`` one attribute test.

    Raises:
        ConfigurationError: No API key, a key that is not printable ASCII, or an option of the wrong type or out
            of its range (docs/configuration.md); the message names the option and never shows the key.

    Example:
        ```python
        from promptstream import PromptStreamClient

        with PromptStreamClient(api_key="ps_...") as client:
            run = client.run_prompt("PROMPT_ID", {"text": "Hi"}, external_user_id="user_123")
            client.track_click(run.run_id, run.experiment_id, label="copy")
        ```
    """

    # -- prompts and results ------------------------------------------------------------------------------------

    @property
    def prompts(self) -> Prompts:
        """Create, get (by id or name), list prompts and add versions (``Prompts``).

        Example:
            ```python
            prompt = client.prompts.get("greeting")
            ```
        """
        return Prompts(self)

    @property
    def experiments(self) -> Experiments:
        """Create, list and get experiments (``Experiments``).

        Example:
            ```python
            experiments = client.experiments.list(prompt.prompt_id)
            ```
        """
        return Experiments(self)

    def run_prompt(
        self,
        prompt_id: str,
        inputs: Mapping[str, Any],
        external_user_id: str | None = None,
        *,
        idempotency_key: str | None = None,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
        fallback: str | Callable[[dict[str, Any]], str] | None = None,
    ) -> RunResponse:
        """Run a prompt in its live experiment and return the variant served and its output.

        Transient failures (connection errors, timeouts, 429, 502, 503, 504) are retried up to ``max_retries``
        times with exponential backoff, honouring ``Retry-After``; every attempt carries the same
        ``Idempotency-Key``, so a retry never creates a second run. ``timeout``, ``max_retries`` and
        ``extra_headers`` override the client's for this call only. The response's ``request_id`` and
        ``response`` (status, headers) describe the HTTP exchange.

        ``fallback`` (a str, or a callable given a copy of the inputs and returning a str) keeps an offline app
        working: when the server cannot be reached (``APIConnectionError``, timeouts included, once the retries
        are used up — never on an HTTP error answer), ``run_prompt`` returns a run made here, with
        ``is_fallback`` True, ``variant_assigned`` ``"fallback"``, ``experiment_id`` ``"offline"`` and a run id
        of its own. Track events on it as on any run: they are delivered when the server is back, stored as
        offline events and counted in no experiment's results (docs/protocol.md).

        Example:
            ```python
            resp = client.run_prompt("PROMPT_ID", {"text": "Hi"}, external_user_id="user_123", timeout=3.0)
            print(resp.output, resp.request_id)
            offline = client.run_prompt("PROMPT_ID", {"text": "Hi"}, fallback=lambda inputs: inputs["text"])
            ```

        Raises ``AuthenticationError``, ``PromptNotFoundError``, ``BadRequestError`` (e.g. a missing template
        input), ``RateLimitError``, ``ServerError``, ``APIConnectionError`` / ``APITimeoutError``, and
        ``InvalidArgumentError`` for an argument that fails validation, before any I/O.
        """
        options = self._call_options(timeout, max_retries, extra_headers)
        path, body, headers = self._run_request(prompt_id, inputs, external_user_id, idempotency_key)
        offline = check_fallback(fallback)
        with self._run_observer(prompt_id) as observer:
            if observer.headers:  # trace context (traceparent): the same on every retry
                headers = {**headers, **observer.headers}
            try:
                response = self._request_with_retries("POST", path, body, headers, options)
            except APIConnectionError:
                if offline is None:
                    raise
                run = fallback_run(offline, inputs)
            else:
                run = decode_response(response, _decode_run, "run")
            observer.succeeded(run)
            return run

    def assign(
        self,
        prompt_id: str,
        external_user_id: str | None = None,
        *,
        idempotency_key: str | None = None,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Assignment:
        """The server's sticky assignment of this user to a variant of the prompt's live experiment, without
        running a model: the server records it as a run without output and returns the version's ``template``.
        Call your model yourself, then ``track_*`` with the assignment's ``run_id`` and ``experiment_id``: the events
        count in the experiment's results like a ``run_prompt`` run's. The same user gets the variant
        ``run_prompt`` would serve. Retried like ``run_prompt``, with one ``Idempotency-Key`` for every attempt, so a
        retry never records a second run.

        Example:
            ```python
            assignment = client.assign("PROMPT_ID", external_user_id="user_123")
            prompt_text = assignment.render({"text": "Hi"})  # call your model with it
            client.track_click(assignment.run_id, assignment.experiment_id, label="copy")
            ```

        Raises ``PromptNotFoundError`` for an unknown prompt, ``InvalidArgumentError`` for an argument that fails
        validation (before any I/O), and the errors ``run_prompt`` raises.
        """
        options = self._call_options(timeout, max_retries, extra_headers)
        path, body, headers = assign_request(prompt_id, self._user_id(external_user_id), idempotency_key)
        response = self._request_with_retries("POST", path, body, headers, options)
        return decode_response(response, decode_assignment, "assignment")

    def get_experiment_results(
        self,
        experiment_id: str,
        *,
        guardrails: Sequence[str] | None = None,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> ExperimentResults:
        """Per-variant results of an experiment: runs, users, click-through and conversion rates (per run and per
        user) with 95% Wilson intervals, thumbs-up share, mean rating and engagement with 95% intervals, and for
        each variant its lift over the control with a p-value; latency, tokens and cost; the peeking-safe decision.
        ``guardrails`` chooses the metrics the decision guards (default ``["thumbs_up", "rating"]``; also e.g.
        ``"latency_p95"``, docs/experiments.md). Retried like ``run_prompt``.

        Example:
            ```python
            results = client.get_experiment_results(run.experiment_id)
            best = max(results.variants, key=lambda v: v.conversion.per_user.rate or 0.0)
            ```

        Raises ``NotFoundError`` for an unknown experiment, and the errors ``run_prompt`` raises.
        """
        options = self._call_options(timeout, max_retries, extra_headers)
        response = self._request_with_retries("GET", self._results_path(experiment_id, guardrails), None, None, options)
        return decode_response(response, _decode_results, "results")

    def _send(self, call: Any, timeout: object, max_retries: object, extra_headers: object) -> Any:
        """A management call (``_resources``): validated, retried, decoded."""
        options = self._call_options(timeout, max_retries, extra_headers)
        body, headers = (None, None) if call.body is None else self._json_body(call.body)
        return decode_response(
            self._request_with_retries(call.method, call.path, body, headers, options), call.decode, call.what
        )

    def _request_with_retries(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str] | None, options: CallOptions
    ) -> httpx.Response:
        schedule = RetrySchedule(first=0.5, cap=8.0)
        all_headers = {**options.headers, **headers} if headers else options.headers
        while True:
            try:
                response = self._transport.request(
                    method, path, content=body, headers=all_headers, timeout=options.timeout
                )
            except APIConnectionError as exc:
                time.sleep(self._delay_before_retry(options, schedule, exc))
                continue
            if response.status_code < 400:
                return response
            time.sleep(self._delay_before_retry(options, schedule, response))

    # -- delivery control -----------------------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event tracked before this call is acknowledged by the server.

        Returns True when it was, False when ``timeout`` (default 10 s) passed first; the events stay spooled
        and are delivered later. Never raises for network or server problems.

        Example:
            ```python
            if not client.flush(timeout=5):
                print("still delivering:", client.stats().pending)
            ```
        """
        seconds = check_timeout("timeout", timeout)
        return True if self._agent is None else self._agent.flush(seconds)

    def close(self, timeout: float | None = None) -> bool:
        """Flush for up to ``timeout`` (default ``shutdown_timeout``), stop the agent and close connections.

        Returns True when every event tracked before the call was acknowledged, like ``flush``. Events not yet
        delivered stay in the spool and go out the next time a client for the same server starts. Calling ``close``
        twice is harmless and returns the same answer; ``with PromptStreamClient() as client:`` calls it for you.

        Example:
            ```python
            client = PromptStreamClient()
            try:
                serve_requests(client)
            finally:
                client.close(timeout=5)
            ```
        """
        seconds = check_timeout("timeout", timeout)
        flushed = True if self._agent is None else self._agent.close(seconds)
        self._transport.close()
        return flushed

    def __enter__(self) -> PromptStreamClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
