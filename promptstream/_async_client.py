"""``AsyncPromptStreamClient``: the same client for asyncio applications. ``run_prompt`` and
``get_experiment_results`` are awaited over an ``httpx.AsyncClient``; ``track_*`` are the very same plain calls
(they only enqueue, in about 2 µs, so there is nothing to await); the tracking agent is the same one, on its own
threads; ``flush`` and ``aclose`` wait for it in a worker thread, so the event loop never blocks."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

import httpx

from ._assign import Assignment, assign_request, decode_assignment
from ._async_resources import AsyncExperiments, AsyncPrompts
from ._base_client import CallOptions, ClientBase, decode_response
from ._client import _decode_results, _decode_run
from ._errors import APIConnectionError
from ._fallback import check_fallback, fallback_run
from ._models import RunResponse
from ._results_models import ExperimentResults
from ._retry import RetrySchedule
from ._validation import check_timeout

__all__ = ["AsyncPromptStreamClient"]

# asyncio is imported inside the coroutines, where the running loop has already imported it: at module level it
# would cost every `import promptstream`, synchronous users included, 10 ms (measured with -X importtime).


class AsyncPromptStreamClient(ClientBase):
    """The PromptStream client for asyncio: ``await`` prompt runs, track events without waiting.

    Example:
        ```python
        from promptstream import AsyncPromptStreamClient

        async with AsyncPromptStreamClient(api_key="ps_...") as client:
            run = await client.run_prompt("PROMPT_ID", {"text": "Hi"}, external_user_id="user_123")
            client.track_click(run.run_id, run.experiment_id, label="copy")  # no await: it only enqueues
        ```

    Options, errors, retries and delivery guarantees are PromptStreamClient's, except ``http_client``: here an
    ``httpx.AsyncClient`` for the awaited requests (the SDK owns their base URL, auth, timeouts and retries, and never
    closes it). The background sender runs on its own thread and needs a synchronous client: give it
    ``sender_http_client=httpx.Client(...)`` with the same TLS and proxy settings (a private CA, mTLS, a proxy),
    else it uses the SDK's defaults and events cannot reach a server only your settings reach. One client per event
    loop: its HTTP connections belong to the loop that first used them (docs/configuration.md, "Bring your own
    HTTP client").
    """

    _http_client_type = httpx.AsyncClient

    @property
    def prompts(self) -> AsyncPrompts:
        """``PromptStreamClient.prompts``, awaited (``AsyncPrompts``).

        Example:
            ```python
            prompt = await client.prompts.get("greeting")
            ```
        """
        return AsyncPrompts(self)

    @property
    def experiments(self) -> AsyncExperiments:
        """``PromptStreamClient.experiments``, awaited (``AsyncExperiments``).

        Example:
            ```python
            experiments = await client.experiments.list(prompt.prompt_id)
            ```
        """
        return AsyncExperiments(self)

    async def run_prompt(
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
        """``PromptStreamClient.run_prompt``, awaited.

        Example:
            ```python
            run = await client.run_prompt("PROMPT_ID", {"text": "Hi"}, external_user_id="user_123")
            ```
        """
        options = self._call_options(timeout, max_retries, extra_headers)
        path, body, headers = self._run_request(prompt_id, inputs, external_user_id, idempotency_key)
        offline = check_fallback(fallback)
        with self._run_observer(prompt_id) as observer:
            if observer.headers:  # trace context (traceparent): the same on every retry
                headers = {**headers, **observer.headers}
            try:
                response = await self._request_with_retries("POST", path, body, headers, options)
            except APIConnectionError:
                if offline is None:
                    raise
                run = fallback_run(offline, inputs)
            else:
                run = decode_response(response, _decode_run, "run")
            observer.succeeded(run)
            return run

    async def assign(
        self,
        prompt_id: str,
        external_user_id: str | None = None,
        *,
        idempotency_key: str | None = None,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Assignment:
        """``PromptStreamClient.assign``, awaited: the sticky assignment without a model, as a run without output.

        Example:
            ```python
            assignment = await client.assign("PROMPT_ID", external_user_id="user_123")
            client.track_conversion(assignment.run_id, assignment.experiment_id)
            ```
        """
        options = self._call_options(timeout, max_retries, extra_headers)
        path, body, headers = assign_request(prompt_id, self._user_id(external_user_id), idempotency_key)
        response = await self._request_with_retries("POST", path, body, headers, options)
        return decode_response(response, decode_assignment, "assignment")

    async def get_experiment_results(
        self,
        experiment_id: str,
        *,
        guardrails: Sequence[str] | None = None,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> ExperimentResults:
        """``PromptStreamClient.get_experiment_results``, awaited.

        Example:
            ```python
            results = await client.get_experiment_results(run.experiment_id)
            ```
        """
        options = self._call_options(timeout, max_retries, extra_headers)
        response = await self._request_with_retries(
            "GET", self._results_path(experiment_id, guardrails), None, None, options
        )
        return decode_response(response, _decode_results, "results")

    async def _send(self, call: Any, timeout: object, max_retries: object, extra_headers: object) -> Any:
        options = self._call_options(timeout, max_retries, extra_headers)
        body, headers = (None, None) if call.body is None else self._json_body(call.body)
        response = await self._request_with_retries(call.method, call.path, body, headers, options)
        return decode_response(response, call.decode, call.what)

    async def _request_with_retries(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str] | None, options: CallOptions
    ) -> httpx.Response:
        import asyncio

        client = self._async_pool.get(self._transport)
        schedule = RetrySchedule(first=0.5, cap=8.0)
        all_headers = {**options.headers, **headers} if headers else options.headers
        while True:
            try:
                response = await self._transport.request_async(
                    client, method, path, content=body, headers=all_headers, timeout=options.timeout
                )
            except APIConnectionError as exc:
                await asyncio.sleep(self._delay_before_retry(options, schedule, exc))
                continue
            if response.status_code < 400:
                return response
            await asyncio.sleep(self._delay_before_retry(options, schedule, response))

    async def flush(self, timeout: float | None = None) -> bool:
        """``PromptStreamClient.flush``, waited for in a worker thread: the event loop keeps running.

        Example:
            ```python
            delivered = await client.flush(timeout=5)
            ```
        """
        import asyncio

        seconds = check_timeout("timeout", timeout)
        if self._agent is None:
            return True
        return await asyncio.to_thread(self._agent.flush, seconds)

    async def aclose(self, timeout: float | None = None) -> bool:
        """Flush for up to ``timeout`` (default ``shutdown_timeout``) off the loop, stop the agent, close connections.
        Returns what ``close`` returns: True when every event tracked before the call was acknowledged.

        Example:
            ```python
            await client.aclose()
            ```
        """
        import asyncio

        seconds = check_timeout("timeout", timeout)
        flushed = True
        if self._agent is not None:
            flushed = await asyncio.to_thread(self._agent.close, seconds)
        await self._async_pool.aclose()
        self._transport.close()
        return flushed

    async def __aenter__(self) -> AsyncPromptStreamClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
