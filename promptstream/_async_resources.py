"""``AsyncPromptStreamClient.prompts`` and ``.experiments``: ``_resources``' management calls, awaited. The requests
are built and validated by the same functions as the synchronous ones."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import TYPE_CHECKING

import httpx
import msgspec

from ._errors import NotFoundError
from ._management_models import Experiment, ExperimentList, Prompt, PromptList, PromptVersion, Variant
from ._resources import (
    add_version_call,
    create_experiment_call,
    create_prompt_call,
    end_experiment_call,
    get_experiment_call,
    get_prompt_call,
    list_experiments_call,
    list_prompts_call,
    prompt_by_name,
    timeseries_call,
)
from ._results_models import ExperimentTimeseries, TimeseriesRow

if TYPE_CHECKING:
    from ._async_client import AsyncPromptStreamClient

__all__ = ["AsyncExperiments", "AsyncPrompts"]


class AsyncPrompts:
    """``AsyncPromptStreamClient.prompts``: ``Prompts``, awaited.

    Example:
        ```python
        prompt = await client.prompts.get("greeting")
        ```
    """

    def __init__(self, client: AsyncPromptStreamClient) -> None:
        self._client = client

    async def create(
        self,
        name: str,
        template: str,
        *,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> Prompt:
        """``Prompts.create``, awaited.

        Example:
            ```python
            prompt = await client.prompts.create("greeting", "Hello {{name}}!")
            ```
        """
        call = create_prompt_call(name, template)
        result: Prompt = await self._client._send(call, timeout, max_retries, extra_headers)
        return result

    async def get(
        self,
        prompt: str,
        *,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> Prompt:
        """``Prompts.get``, awaited: by id, else by name.

        Example:
            ```python
            prompt = await client.prompts.get("greeting")
            ```
        """
        try:
            result: Prompt = await self._client._send(get_prompt_call(prompt), timeout, max_retries, extra_headers)
        except NotFoundError as exc:
            listed: PromptList = await self._client._send(list_prompts_call(), timeout, max_retries, extra_headers)
            return prompt_by_name(listed, prompt, exc)
        return result

    async def list(
        self,
        *,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> builtins.list[Prompt]:
        """``Prompts.list``, awaited.

        Example:
            ```python
            names = [prompt.name for prompt in await client.prompts.list()]
            ```
        """
        listed: PromptList = await self._client._send(list_prompts_call(), timeout, max_retries, extra_headers)
        return listed.prompts

    async def add_version(
        self,
        prompt_id: str,
        template: str,
        *,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> PromptVersion:
        """``Prompts.add_version``, awaited.

        Example:
            ```python
            version = await client.prompts.add_version(prompt.prompt_id, "Hi {{name}}!")
            ```
        """
        call = add_version_call(prompt_id, template)
        result: PromptVersion = await self._client._send(call, timeout, max_retries, extra_headers)
        return msgspec.structs.replace(result, template=call.body["template"]) if call.body else result


class AsyncExperiments:
    """``AsyncPromptStreamClient.experiments``: ``Experiments``, awaited.

    Example:
        ```python
        experiments = await client.experiments.list(prompt.prompt_id)
        ```
    """

    def __init__(self, client: AsyncPromptStreamClient) -> None:
        self._client = client

    async def create(
        self,
        prompt_id: str,
        variants: Sequence[Variant | tuple[int, float] | int],
        *,
        name: str | None = None,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> Experiment:
        """``Experiments.create``, awaited.

        Example:
            ```python
            experiment = await client.experiments.create(prompt.prompt_id, [1, 2])
            ```
        """
        call = create_experiment_call(prompt_id, variants, name)
        result: Experiment = await self._client._send(call, timeout, max_retries, extra_headers)
        return result

    async def list(
        self,
        prompt_id: str | None = None,
        *,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> builtins.list[Experiment]:
        """``Experiments.list``, awaited.

        Example:
            ```python
            experiments = await client.experiments.list(prompt.prompt_id)
            ```
        """
        call = list_experiments_call(prompt_id)
        listed: ExperimentList = await self._client._send(call, timeout, max_retries, extra_headers)
        return listed.experiments

    async def get(
        self,
        experiment_id: str,
        *,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> Experiment:
        """``Experiments.get``, awaited.

        Example:
            ```python
            experiment = await client.experiments.get(experiment_id)
            print(experiment.active)
            ```
        """
        call = get_experiment_call(experiment_id)
        result: Experiment = await self._client._send(call, timeout, max_retries, extra_headers)
        return result

    async def end(
        self,
        experiment_id: str,
        *,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> Experiment:
        """``Experiments.end``, awaited.

        Example:
            ```python
            experiment = await client.experiments.create(prompt_id, [1])
            ended = await client.experiments.end(experiment.experiment_id)
            ```
        """
        call = end_experiment_call(experiment_id)
        result: Experiment = await self._client._send(call, timeout, max_retries, extra_headers)
        return result

    async def timeseries(
        self,
        experiment_id: str,
        *,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> builtins.list[TimeseriesRow]:
        """``Experiments.timeseries``, awaited.

        Example:
            ```python
            rows = await client.experiments.timeseries(experiment_id)
            ```
        """
        answer: ExperimentTimeseries = await self._client._send(
            timeseries_call(experiment_id), timeout, max_retries, extra_headers
        )
        return answer.days
