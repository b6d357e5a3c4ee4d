"""``PromptStreamClient``: synchronous prompt runs and fire-and-forget event tracking."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from ._config import (
    DEFAULT_TIMEOUT,
    ENV_DISABLED,
    AgentConfig,
    agent_config_from,
    check_bool_option,
    check_callable_option,
    check_max_retries,
    check_timeout_option,
    env_flag,
    redact_url,
    resolve_api_key,
    resolve_base_url,
)
from ._errors import APIConnectionError, InvalidResponseError, PromptStreamError
from ._http import HttpTransport, error_from_response
from ._ids import new_idempotency_key, stamp_event
from ._models import DeliveryStats, Event, ExperimentResults, RunRequest, RunResponse
from ._privacy import BeforeSend, user_id_hasher, warn_if_key_goes_in_clear
from ._retry import RetrySchedule, parse_retry_after
from ._validation import (
    check_bool,
    check_id,
    check_idempotency_key,
    check_inputs,
    check_label,
    check_number,
    check_optional_label,
    check_timeout,
    encode_metadata,
)
from .agent import TrackingAgent, spool_file_path

__all__ = ["PromptStreamClient"]

_encode = msgspec.json.Encoder().encode
_decode_run = msgspec.json.Decoder(RunResponse).decode
_decode_results = msgspec.json.Decoder(ExperimentResults).decode
T = TypeVar("T")


def _decode(response: httpx.Response, decode: Callable[[bytes], T], what: str) -> T:
    try:
        return decode(response.content)
    except msgspec.DecodeError as exc:
        raise InvalidResponseError(
            f"{what} response does not match the protocol: {exc}",
            status_code=response.status_code,
            request_id=response.headers.get("x-request-id"),
        ) from None


_RETRYABLE_RUN_STATUS = frozenset({429, 502, 503, 504})
# A Retry-After longer than this is not slept through inside run_prompt: the caller gets RateLimitError at once.
_MAX_RETRY_AFTER = 60.0


def _discard(event: bytes) -> None:
    """Where a disabled client's events go."""


class _ClientBase:
    """What PromptStreamClient and AsyncPromptStreamClient share: options, the tracking agent, ``track_*``,
    ``stats`` and the pieces of a request. Only how a request is awaited differs between them."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = 2,
        disabled: bool | None = None,
        spool: bool | None = None,
        spool_dir: str | os.PathLike[str] | None = None,
        max_spool_bytes: int | None = None,
        max_queue_size: int | None = None,
        flush_interval: float | None = None,
        batch_max_events: int | None = None,
        shutdown_timeout: float | None = None,
        encoding: Literal["json", "msgpack"] | None = None,
        durable: bool | None = None,
        on_error: Callable[[PromptStreamError], None] | None = None,
        before_send: BeforeSend | None = None,
        hash_user_ids: str | bytes | None = None,
        agent_config: AgentConfig | None = None,
    ) -> None:
        # Every option is checked here, once, with a ConfigurationError naming it and its range
        # (docs/configuration.md): nothing later (a request, the agent's threads) meets a value it cannot use.
        self._api_key: str = resolve_api_key(api_key)
        self.base_url: str = resolve_base_url(base_url)
        self.max_retries: int = check_max_retries(max_retries)
        self.timeout: httpx.Timeout = check_timeout_option(timeout)
        check_callable_option("on_error", on_error)
        check_callable_option("before_send", before_send)
        self._hash_user_id = None if hash_user_ids is None else user_id_hasher(hash_user_ids)
        config = agent_config_from(
            agent_config,
            {
                "spool": spool,
                "spool_dir": spool_dir,
                "max_spool_bytes": max_spool_bytes,
                "max_queue_size": max_queue_size,
                "flush_interval": flush_interval,
                "batch_max_events": batch_max_events,
                "shutdown_timeout": shutdown_timeout,
                "encoding": encoding,
                "durable": durable,
            },
        )
        self.disabled: bool = env_flag(ENV_DISABLED) if disabled is None else check_bool_option("disabled", disabled)
        warn_if_key_goes_in_clear(self.base_url)
        self._transport = HttpTransport(self.base_url, self._api_key, self.timeout)
        self._agent: TrackingAgent | None = None
        self._enqueue: Callable[[bytes], None] = _discard
        if not self.disabled:
            self._agent = TrackingAgent(
                config,
                self._transport,
                spool_path=spool_file_path(config, self.base_url, self._api_key),
                on_error=on_error,
                before_send=before_send,
            )
            self._enqueue = self._agent.enqueue

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={redact_url(self.base_url)!r}, disabled={self.disabled})"

    # -- requests, shared by both clients --------------------------------------------------------------------------

    def _run_request(
        self, prompt_id: str, inputs: Mapping[str, Any], external_user_id: str | None, idempotency_key: str | None
    ) -> tuple[str, bytes, dict[str, str]]:
        prompt_id = check_id("prompt_id", prompt_id)
        body = _encode(
            RunRequest(
                inputs=check_inputs(dict(inputs) if isinstance(inputs, Mapping) else inputs),
                external_user_id=self._user_id(external_user_id),
            )
        )
        key = new_idempotency_key() if idempotency_key is None else check_idempotency_key(idempotency_key)
        headers = {"Content-Type": "application/json", "Idempotency-Key": key}
        return f"/v1/prompts/{quote(prompt_id, safe='')}/runs", body, headers

    @staticmethod
    def _results_path(experiment_id: str) -> str:
        return f"/v1/experiments/{quote(check_id('experiment_id', experiment_id), safe='')}/results"

    def _delay_before_retry(self, schedule: RetrySchedule, outcome: httpx.Response | APIConnectionError) -> float:
        """Seconds to wait before trying again, or raise what the caller should see. The same policy for every
        synchronous call; a POST is only retried because it carries an Idempotency-Key."""
        if isinstance(outcome, APIConnectionError):
            if schedule.attempts >= self.max_retries:
                raise outcome
            return schedule.next_delay()
        error = error_from_response(outcome)
        retry_after = parse_retry_after(outcome.headers.get("retry-after"))
        if (
            outcome.status_code not in _RETRYABLE_RUN_STATUS
            or schedule.attempts >= self.max_retries
            or (retry_after is not None and retry_after > _MAX_RETRY_AFTER)
        ):
            raise error
        return schedule.next_delay(retry_after)

    # -- tracking -------------------------------------------------------------------------------------------------

    def track_click(
        self,
        prompt_run_id: str,
        experiment_id: str,
        label: str,
        external_user_id: str | None = None,
        source: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Record a click on something the run produced. Returns the event's id.

        Example:
            ```python
            client.track_click(run.run_id, run.experiment_id, label="copy", metadata={"position": 1})
            ```
        """
        return self._track_labelled("click", prompt_run_id, experiment_id, label, external_user_id, source, metadata)

    def track_conversion(
        self,
        prompt_run_id: str,
        experiment_id: str,
        label: str = "conversion",
        external_user_id: str | None = None,
        source: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Record that the user converted after the run (signed up, bought, ...). Returns the event's id.

        Example:
            ```python
            client.track_conversion(run.run_id, run.experiment_id, label="purchase", metadata={"value": 42})
            ```
        """
        return self._track_labelled(
            "conversion", prompt_run_id, experiment_id, label, external_user_id, source, metadata
        )

    def track_feedback(
        self,
        prompt_run_id: str,
        experiment_id: str,
        thumbs_up: bool,
        external_user_id: str | None = None,
        source: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Record thumbs-up (True) or thumbs-down (False) feedback on the run. Returns the event's id.

        Example:
            ```python
            client.track_feedback(run.run_id, run.experiment_id, thumbs_up=True)
            ```
        """
        return self._track(
            "feedback",
            prompt_run_id,
            experiment_id,
            external_user_id,
            thumbs_up=check_bool("thumbs_up", thumbs_up),
            source=check_optional_label("source", source),
            metadata=encode_metadata(metadata),
        )

    def track_rating(
        self, prompt_run_id: str, experiment_id: str, rating: float, external_user_id: str | None = None
    ) -> str:
        """Record a numeric rating of the run (any finite number; your scale). Returns the event's id.

        Example:
            ```python
            client.track_rating(run.run_id, run.experiment_id, rating=4.5)
            ```
        """
        return self._track(
            "rating", prompt_run_id, experiment_id, external_user_id, rating=check_number("rating", rating)
        )

    def track_engagement(
        self,
        prompt_run_id: str,
        experiment_id: str,
        engagement_score: float,
        external_user_id: str | None = None,
    ) -> str:
        """Record an engagement score for the run (e.g. seconds read; any finite number). Returns the event's id.

        Example:
            ```python
            client.track_engagement(run.run_id, run.experiment_id, engagement_score=37.5)
            ```
        """
        return self._track(
            "engagement",
            prompt_run_id,
            experiment_id,
            external_user_id,
            engagement_score=check_number("engagement_score", engagement_score),
        )

    def _track_labelled(
        self,
        event_type: Literal["click", "conversion"],
        prompt_run_id: str,
        experiment_id: str,
        label: str,
        external_user_id: str | None,
        source: str | None,
        metadata: dict[str, Any] | None,
    ) -> str:
        # The hot path: one call level below track_*, checks written out rather than delegated, because every call
        # level and keyword hop is a measurable share of a ~1 µs budget (tests/benchmarks/).
        event_id, timestamp = stamp_event()
        event = Event(
            event_id=event_id,
            timestamp=timestamp,
            type=event_type,
            prompt_run_id=check_id("prompt_run_id", prompt_run_id),
            experiment_id=check_id("experiment_id", experiment_id),
            external_user_id=None if external_user_id is None else self._user_id(external_user_id),
            label=check_label("label", label),
            source=None if source is None else check_label("source", source),
            metadata=None if metadata is None else encode_metadata(metadata),
        )
        self._enqueue(_encode(event))
        return event_id

    def _track(
        self,
        event_type: Literal["feedback", "rating", "engagement"],
        prompt_run_id: str,
        experiment_id: str,
        external_user_id: str | None,
        *,
        source: str | None = None,
        metadata: msgspec.Raw | None = None,
        thumbs_up: bool | None = None,
        rating: float | None = None,
        engagement_score: float | None = None,
    ) -> str:
        event_id, timestamp = stamp_event()
        event = Event(
            event_id=event_id,
            timestamp=timestamp,
            type=event_type,
            prompt_run_id=check_id("prompt_run_id", prompt_run_id),
            experiment_id=check_id("experiment_id", experiment_id),
            external_user_id=None if external_user_id is None else self._user_id(external_user_id),
            source=source,
            metadata=metadata,
            thumbs_up=thumbs_up,
            rating=rating,
            engagement_score=engagement_score,
        )
        self._enqueue(_encode(event))
        return event_id

    def _user_id(self, external_user_id: object) -> str | None:
        """The id as it leaves the process: checked, then hashed when the client was given a salt."""
        if external_user_id is None:
            return None
        checked = check_id("external_user_id", external_user_id)
        return checked if self._hash_user_id is None else self._hash_user_id(checked)

    # -- what the agent did -----------------------------------------------------------------------------------------

    def stats(self) -> DeliveryStats:
        """A snapshot of the tracking agent's counters (see ``DeliveryStats``).

        Example:
            ```python
            print(client.stats().sent, "events delivered")
            ```
        """
        return DeliveryStats() if self._agent is None else self._agent.stats()


class PromptStreamClient(_ClientBase):
    """The PromptStream client: run prompts synchronously; track events without waiting.

    ``track_*`` validate their arguments, put the event on an in-memory queue and return its ``event_id``; a
    background agent spools events to a local SQLite file and delivers them (docs/delivery.md). Constructing a
    client does no I/O. One client per process: it owns threads and connections.

    Args:
        api_key: Your API key; default ``$PROMPTSTREAM_API_KEY``. Never logged, never in a ``repr``, an exception
            or a spool file name.
        base_url: The server; default ``$PROMPTSTREAM_BASE_URL``, else ``http://127.0.0.1:8700``.
        timeout: Per request and phase; a float sets every phase. Default 10 s, 5 s to connect.
        max_retries: Retries of ``run_prompt`` and ``get_experiment_results`` after a connection error, a
            timeout, 429, 502, 503 or 504.
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
        agent_config: Every agent setting at once (``AgentConfig``). The agent options above default to None, which
            means "as in agent_config (or its default)"; one given explicitly overrides agent_config's field.

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

    def run_prompt(
        self,
        prompt_id: str,
        inputs: Mapping[str, Any],
        external_user_id: str | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> RunResponse:
        """Run a prompt in its live experiment and return the variant served and its output.

        Transient failures (connection errors, timeouts, 429, 502, 503, 504) are retried up to ``max_retries``
        times with exponential backoff, honouring ``Retry-After``; every attempt carries the same
        ``Idempotency-Key``, so a retry never creates a second run.

        Example:
            ```python
            resp = client.run_prompt("PROMPT_ID", {"text": "Hi"}, external_user_id="user_123")
            print(resp.output)
            ```

        Raises ``AuthenticationError``, ``PromptNotFoundError``, ``BadRequestError`` (e.g. a missing template
        input), ``RateLimitError``, ``ServerError``, ``APIConnectionError`` / ``APITimeoutError``.
        """
        path, body, headers = self._run_request(prompt_id, inputs, external_user_id, idempotency_key)
        return _decode(self._request_with_retries("POST", path, body, headers), _decode_run, "run")

    def get_experiment_results(self, experiment_id: str) -> ExperimentResults:
        """Per-variant results of an experiment: runs, users, click-through and conversion rates (per run and per
        user) with 95% Wilson intervals, thumbs-up share, mean rating and engagement with 95% intervals, and for
        each variant its lift over the control with a p-value. Retried like ``run_prompt``.

        Example:
            ```python
            results = client.get_experiment_results(run.experiment_id)
            best = max(results.variants, key=lambda v: v.conversion.per_user.rate or 0.0)
            ```

        Raises ``NotFoundError`` for an unknown experiment, and the errors ``run_prompt`` raises.
        """
        response = self._request_with_retries("GET", self._results_path(experiment_id))
        return _decode(response, _decode_results, "results")

    def _request_with_retries(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        schedule = RetrySchedule(first=0.5, cap=8.0)
        while True:
            try:
                response = self._transport.request(method, path, content=body, headers=headers)
            except APIConnectionError as exc:
                time.sleep(self._delay_before_retry(schedule, exc))
                continue
            if response.status_code < 400:
                return response
            time.sleep(self._delay_before_retry(schedule, response))

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

    def close(self, timeout: float | None = None) -> None:
        """Flush for up to ``timeout`` (default ``shutdown_timeout``), stop the agent and close connections.

        Events not yet delivered stay in the spool and go out the next time a client for the same server and key
        starts. Calling ``close`` twice is harmless; ``with PromptStreamClient() as client:`` calls it for you.

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
        if self._agent is not None:
            self._agent.close(seconds)
        self._transport.close()

    def __enter__(self) -> PromptStreamClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
