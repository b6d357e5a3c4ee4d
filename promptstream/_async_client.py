"""``AsyncPromptStreamClient``: the same client for asyncio applications. ``run_prompt`` and
``get_experiment_results`` are awaited over an ``httpx.AsyncClient``; ``track_*`` are the very same plain calls
(they only enqueue, in about 2 µs, so there is nothing to await); the tracking agent is the same one, on its own
threads; ``flush`` and ``aclose`` wait for it in a worker thread, so the event loop never blocks."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any

import httpx

from ._client import _ClientBase, _decode, _decode_results, _decode_run
from ._errors import APIConnectionError
from ._http import HttpTransport
from ._models import ExperimentResults, RunResponse
from ._retry import RetrySchedule
from ._validation import check_timeout

__all__ = ["AsyncPromptStreamClient"]

# asyncio is imported inside the coroutines, where the running loop has already imported it: at module level it
# would cost every `import promptstream`, synchronous users included, 10 ms (measured with -X importtime).


class AsyncPromptStreamClient(_ClientBase):
    """The PromptStream client for asyncio: ``await`` prompt runs, track events without waiting.

    Example:
        ```python
        from promptstream import AsyncPromptStreamClient

        async with AsyncPromptStreamClient(api_key="ps_...") as client:
            run = await client.run_prompt("PROMPT_ID", {"text": "Hi"}, external_user_id="user_123")
            client.track_click(run.run_id, run.experiment_id, label="copy")  # no await: it only enqueues
        ```

    Options, errors, retries and delivery guarantees are PromptStreamClient's. One client per event loop: its
    HTTP connections belong to the loop that first used them.
    """

    _async_http: httpx.AsyncClient | None = None

    async def run_prompt(
        self,
        prompt_id: str,
        inputs: Mapping[str, Any],
        external_user_id: str | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> RunResponse:
        """``PromptStreamClient.run_prompt``, awaited.

        Example:
            ```python
            run = await client.run_prompt("PROMPT_ID", {"text": "Hi"}, external_user_id="user_123")
            ```
        """
        path, body, headers = self._run_request(prompt_id, inputs, external_user_id, idempotency_key)
        return _decode(await self._request_with_retries("POST", path, body, headers), _decode_run, "run")

    async def get_experiment_results(self, experiment_id: str) -> ExperimentResults:
        """``PromptStreamClient.get_experiment_results``, awaited.

        Example:
            ```python
            results = await client.get_experiment_results(run.experiment_id)
            ```
        """
        response = await self._request_with_retries("GET", self._results_path(experiment_id))
        return _decode(response, _decode_results, "results")

    async def _request_with_retries(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        import asyncio

        if self._async_http is None:
            self._async_http = self._transport.new_async_client()
        schedule = RetrySchedule(first=0.5, cap=8.0)
        while True:
            try:
                response = await HttpTransport.request_async(
                    self._async_http, method, path, content=body, headers=headers, secret=self._transport.secret
                )
            except APIConnectionError as exc:
                await asyncio.sleep(self._delay_before_retry(schedule, exc))
                continue
            if response.status_code < 400:
                return response
            await asyncio.sleep(self._delay_before_retry(schedule, response))

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

    async def aclose(self, timeout: float | None = None) -> None:
        """Flush for up to ``timeout`` (default ``shutdown_timeout``) off the loop, stop the agent, close connections.

        Example:
            ```python
            await client.aclose()
            ```
        """
        import asyncio

        seconds = check_timeout("timeout", timeout)
        if self._agent is not None:
            await asyncio.to_thread(self._agent.close, seconds)
        if self._async_http is not None:
            await self._async_http.aclose()
            self._async_http = None
        self._transport.close()

    async def __aenter__(self) -> AsyncPromptStreamClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
