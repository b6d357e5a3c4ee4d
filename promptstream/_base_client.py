"""What PromptStreamClient and AsyncPromptStreamClient share: options checked once at construction, the tracking
agent, ``with_options`` views, and the pieces of a request (path, body, headers, retry policy, decoding). Only how
a request is awaited differs between the two clients."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from ._agent import EventSink, TrackingAgent, legacy_spool_file_path, spool_file_path
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
from ._errors import (
    APIConnectionError,
    ArgumentTypeError,
    ConfigurationError,
    InvalidArgumentError,
    InvalidResponseError,
    PromptStreamError,
)
from ._http import HttpTransport, error_from_response
from ._ids import new_idempotency_key
from ._instrumentation import NO_RUN_OBSERVER, Instrumentation, RunObserver
from ._models import DeliveryStats, ResponseInfo, RunRequest, attach_response
from ._privacy import BeforeSend, user_id_hasher, warn_if_key_goes_in_clear
from ._retry import RetrySchedule, parse_retry_after
from ._tracking import TrackingMethods
from ._validation import (
    check_call_retries,
    check_call_timeout,
    check_extra_headers,
    check_id,
    check_idempotency_key,
    check_inputs,
    header_problem,
)

__all__ = ["CallOptions", "ClientBase", "decode_response"]

_encode = msgspec.json.Encoder().encode
T = TypeVar("T")
SelfT = TypeVar("SelfT", bound="ClientBase")

_RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
# A Retry-After longer than this is not slept through inside a call: the caller gets RateLimitError at once.
_MAX_RETRY_AFTER = 60.0
_JSON = {"Content-Type": "application/json"}


def _discard(event: bytes) -> None:
    """Where a disabled client's events go."""


def decode_response(response: httpx.Response, decode: Callable[[bytes], T], what: str) -> T:
    """The body as ``T``; a body that does not match the protocol is an InvalidResponseError. Structs that can
    carry it (``RunResponse``) get the exchange's ``ResponseInfo``."""
    request_id = response.headers.get("x-request-id")
    try:
        value = decode(response.content)
    except msgspec.DecodeError as exc:
        raise InvalidResponseError(
            f"{what} response does not match the protocol: {exc}",
            status_code=response.status_code,
            request_id=request_id,
        ) from None
    if isinstance(value, msgspec.Struct) and hasattr(value, "__dict__"):
        try:
            elapsed = response.elapsed.total_seconds()
        except RuntimeError:  # a response built without a request (tests' transports)
            elapsed = 0.0
        info = ResponseInfo(
            status_code=response.status_code, headers=dict(response.headers), request_id=request_id, elapsed=elapsed
        )
        attach_response(value, info)
    return value


class CallOptions(msgspec.Struct, frozen=True):
    """The request options of one call: the client's (or its view's), with what the call overrode."""

    timeout: httpx.Timeout
    max_retries: int
    headers: dict[str, str]


class ClientBase(TrackingMethods):
    _http_client_type: type[httpx.Client] | type[httpx.AsyncClient] = httpx.Client

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = 2,
        default_headers: Mapping[str, str] | None = None,
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
        http_client: httpx.Client | httpx.AsyncClient | None = None,
        sender_http_client: httpx.Client | None = None,
        event_sink: EventSink | None = None,
        instrumentation: Instrumentation | None = None,
    ) -> None:
        # Every option is checked here, once, with a ConfigurationError naming it and its range
        # (docs/configuration.md): nothing later (a request, the agent's threads) meets a value it cannot use.
        self._api_key: str = resolve_api_key(api_key)
        self.base_url: str = resolve_base_url(base_url)
        self.max_retries: int = check_max_retries(max_retries)
        self.timeout: httpx.Timeout = check_timeout_option(timeout)
        self.default_headers: dict[str, str] = _checked_default_headers(default_headers)
        check_callable_option("on_error", on_error)
        check_callable_option("before_send", before_send)
        self._hash_user_id = None if hash_user_ids is None else user_id_hasher(hash_user_ids)
        if http_client is not None and not isinstance(http_client, self._http_client_type):
            raise ConfigurationError(
                f"http_client must be an {self._http_client_type.__module__}.{self._http_client_type.__name__} "
                f"for {type(self).__name__}, got {type(http_client).__name__}"
            )
        if sender_http_client is not None and (
            self._http_client_type is httpx.Client or not isinstance(sender_http_client, httpx.Client)
        ):
            raise ConfigurationError(
                "sender_http_client is the AsyncPromptStreamClient's: an httpx.Client for its background sender"
                f" (PromptStreamClient's sender uses http_client), got {type(sender_http_client).__name__}"
                f" for {type(self).__name__}"
            )
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
        self._transport = HttpTransport(
            self.base_url,
            self._api_key,
            self.timeout,
            # The sync client's own client carries its requests and its events; the async client's sender, a
            # thread, needs a sync one: the user's sender_http_client (same CA/proxy/cert), else the SDK's default.
            http_client=http_client if isinstance(http_client, httpx.Client) else sender_http_client,
        )
        # Shared by with_options views: one pool per client, whatever view sends (the async client's requests).
        self._async_pool = AsyncPool(http_client if isinstance(http_client, httpx.AsyncClient) else None)
        self._agent: EventSink | None = None
        self._enqueue = _discard
        if event_sink is not None:  # the documented seam: events go there instead of the agent (promptstream.testing)
            self._agent = event_sink
            self._enqueue = event_sink.enqueue
        elif not self.disabled:
            self._agent = TrackingAgent(
                config,
                self._transport,
                spool_path=spool_file_path(config, self.base_url, self._api_key),
                # an app upgraded with a backlog in an earlier version's per-key spool delivers it on its own
                adopt=[legacy_spool_file_path(config, self.base_url, self._api_key)],
                on_error=on_error,
                before_send=before_send,
            )
            self._enqueue = self._agent.enqueue
        self._instrumentation = _checked_instrumentation(instrumentation)
        self._span_ids = None if instrumentation is None else instrumentation.current_span_ids
        if instrumentation is not None:
            instrumentation.bind(self)  # last: the integration meets a client that is fully built

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={redact_url(self.base_url)!r}, disabled={self.disabled})"

    def with_options(
        self: SelfT,
        *,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        default_headers: Mapping[str, str] | None = None,
    ) -> SelfT:
        """A light view of this client with other request options. It shares the agent, the connection pool and
        the spool (nothing is started or opened), so it costs a copy of a few attributes: use one per request if
        you like. ``default_headers`` are added to (and override) this client's. Closing a view closes the client.

        Example:
            ```python
            fast = client.with_options(timeout=2.0, max_retries=0)
            run = fast.run_prompt("PROMPT_ID", {"text": "Hi"})  # at most one 2 s attempt
            ```

        Raises ``ConfigurationError`` for an option out of its range, as the constructor does.
        """
        view = copy.copy(self)
        if timeout is not None:
            view.timeout = check_timeout_option(timeout)
        if max_retries is not None:
            view.max_retries = check_max_retries(max_retries)
        if default_headers is not None:
            view.default_headers = {**self.default_headers, **_checked_default_headers(default_headers)}
        return view

    # -- requests, shared by both clients --------------------------------------------------------------------------

    def _call_options(self, timeout: object, max_retries: object, extra_headers: object) -> CallOptions:
        """This call's options; checked like every argument (InvalidArgumentError / ArgumentTypeError)."""
        call_timeout = check_call_timeout(timeout)
        call_retries = check_call_retries(max_retries)
        extra = check_extra_headers(extra_headers)
        return CallOptions(
            timeout=self.timeout if call_timeout is None else call_timeout,
            max_retries=self.max_retries if call_retries is None else call_retries,
            headers={**self.default_headers, **extra} if extra else self.default_headers,
        )

    def _run_request(
        self, prompt_id: object, inputs: object, external_user_id: object, idempotency_key: object
    ) -> tuple[str, bytes, dict[str, str]]:
        checked_id = check_id("prompt_id", prompt_id)
        body = _encode(
            RunRequest(
                inputs=check_inputs(dict(inputs) if isinstance(inputs, Mapping) else inputs),
                external_user_id=self._user_id(external_user_id),
            )
        )
        key = new_idempotency_key() if idempotency_key is None else check_idempotency_key(idempotency_key)
        return f"/v1/prompts/{quote(checked_id, safe='')}/runs", body, {**_JSON, "Idempotency-Key": key}

    def _run_observer(self, prompt_id: str) -> RunObserver:
        """What observes one run_prompt call: the instrumentation's (a span), else nothing."""
        if self._instrumentation is None:
            return NO_RUN_OBSERVER
        return self._instrumentation.run_started(prompt_id, server_address=self.base_url)

    @staticmethod
    def _results_path(experiment_id: object, guardrails: object = None) -> str:
        path = f"/v1/experiments/{quote(check_id('experiment_id', experiment_id), safe='')}/results"
        if guardrails is None:
            return path
        if isinstance(guardrails, str) or not isinstance(guardrails, list | tuple):
            raise ArgumentTypeError("guardrails", "must be a list of metric names, e.g. ['thumbs_up', 'latency_p95']")
        for name in guardrails:
            if not isinstance(name, str) or not name or "," in name or len(name) > 64:
                raise InvalidArgumentError("guardrails", f"{name!r} is not a metric name")
        return f"{path}?guardrails={quote(','.join(guardrails), safe=',')}"

    @staticmethod
    def _json_body(body: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        """A management call's body; it carries a fresh Idempotency-Key, so a retried POST creates nothing twice."""
        return _encode(body), {**_JSON, "Idempotency-Key": new_idempotency_key()}

    @staticmethod
    def _delay_before_retry(
        options: CallOptions, schedule: RetrySchedule, outcome: httpx.Response | APIConnectionError
    ) -> float:
        """Seconds to wait before trying again, or raise what the caller should see. The same policy for every
        synchronous call; a POST is only retried because it carries an Idempotency-Key."""
        if isinstance(outcome, APIConnectionError):
            if schedule.attempts >= options.max_retries:
                raise outcome
            return schedule.next_delay()
        error = error_from_response(outcome)
        retry_after = parse_retry_after(outcome.headers.get("retry-after"))
        if (
            outcome.status_code not in _RETRYABLE_STATUS
            or schedule.attempts >= options.max_retries
            or (retry_after is not None and retry_after > _MAX_RETRY_AFTER)
        ):
            raise error
        return schedule.next_delay(retry_after)

    # -- what the agent did -----------------------------------------------------------------------------------------

    def stats(self) -> DeliveryStats:
        """A snapshot of the tracking agent's counters (see ``DeliveryStats``).

        Example:
            ```python
            print(client.stats().sent, "events delivered")
            ```
        """
        return DeliveryStats() if self._agent is None else self._agent.stats()


class AsyncPool:
    """The AsyncClient of a client and its views: the user's, or one the SDK makes on first use and closes."""

    def __init__(self, user_client: httpx.AsyncClient | None) -> None:
        self._user_client = user_client
        self._own: httpx.AsyncClient | None = None

    def get(self, transport: HttpTransport) -> httpx.AsyncClient:
        if self._user_client is not None:
            return self._user_client
        if self._own is None:
            self._own = transport.new_async_client()
        return self._own

    async def aclose(self) -> None:
        if self._own is not None:
            await self._own.aclose()
            self._own = None


def _checked_instrumentation(instrumentation: object) -> Instrumentation | None:
    if instrumentation is None:
        return None
    missing = [
        name
        for name in ("bind", "current_span_ids", "run_started")
        if not callable(getattr(instrumentation, name, None))
    ]
    if missing:
        raise ConfigurationError(
            "instrumentation must provide bind(), current_span_ids() and run_started() (an Instrumentation such as"
            f" promptstream.otel.OpenTelemetry()); {type(instrumentation).__name__} lacks {', '.join(missing)}"
        )
    checked: Instrumentation = instrumentation  # type: ignore[assignment]
    return checked


def _checked_default_headers(headers: object) -> dict[str, str]:
    if headers is None:
        return {}
    problem = header_problem(headers)
    if problem is not None:
        raise ConfigurationError(f"default_headers: {problem}")
    checked: dict[str, str] = dict(headers)  # type: ignore[call-overload]
    return checked
