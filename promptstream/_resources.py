"""``client.prompts`` and ``client.experiments``: typed management of prompts and experiments (the protocol's admin
endpoints), for the synchronous and the asynchronous client. The CLI uses these too.

Each call takes the per-call options ``timeout=``, ``max_retries=`` and ``extra_headers=`` like ``run_prompt``,
validates its arguments before any I/O, retries like ``run_prompt`` (POSTs carry an Idempotency-Key, so a retry
creates nothing twice) and raises the SDK's errors.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import quote

import httpx
import msgspec

from ._errors import ArgumentTypeError, InvalidArgumentError, NotFoundError
from ._management_models import Experiment, ExperimentList, Prompt, PromptList, PromptVersion, Variant
from ._results_models import ExperimentTimeseries, TimeseriesRow
from ._validation import check_id, check_label

if TYPE_CHECKING:
    from ._client import PromptStreamClient

__all__ = [
    "Experiments",
    "Prompts",
    "add_version_call",
    "create_experiment_call",
    "create_prompt_call",
    "end_experiment_call",
    "get_experiment_call",
    "get_prompt_call",
    "list_experiments_call",
    "list_prompts_call",
    "prompt_by_name",
    "timeseries_call",
]

MAX_VARIANTS = 100
MAX_WEIGHT = 1e6
MAX_TEMPLATE_CHARS = 1024 * 1024

_decode_prompt = msgspec.json.Decoder(Prompt).decode
_decode_prompts = msgspec.json.Decoder(PromptList).decode
_decode_version = msgspec.json.Decoder(PromptVersion).decode
_decode_experiment = msgspec.json.Decoder(Experiment).decode
_decode_experiments = msgspec.json.Decoder(ExperimentList).decode
_decode_timeseries = msgspec.json.Decoder(ExperimentTimeseries).decode


class _Call(NamedTuple):
    """One management request, built and validated before any I/O."""

    method: str
    path: str
    body: dict[str, Any] | None
    decode: Callable[[bytes], Any]
    what: str


def _part(value: str) -> str:
    return quote(value, safe="")


def _template(value: object) -> str:
    if not isinstance(value, str):
        raise ArgumentTypeError("template", f"must be a str, got {type(value).__name__}")
    if not value or len(value) > MAX_TEMPLATE_CHARS:
        raise InvalidArgumentError("template", f"must be 1 to {MAX_TEMPLATE_CHARS} characters, got {len(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgumentError("template", "is not valid Unicode (lone surrogate)") from None
    return value


def _variant(item: object) -> dict[str, Any]:
    version: object
    weight: object
    if isinstance(item, Variant):
        version, weight = item.version, item.weight
    elif isinstance(item, tuple) and len(item) == 2:
        version, weight = item
    else:
        version, weight = item, 1.0
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidArgumentError("variants", f"a version must be an int >= 1, got {version!r:.40}")
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise InvalidArgumentError("variants", f"a weight must be a number, got {type(weight).__name__}")
    if not (math.isfinite(weight) and 0 < weight <= MAX_WEIGHT):
        raise InvalidArgumentError("variants", f"a weight must be in (0, {MAX_WEIGHT:g}], got {weight!r}")
    return {"version": version, "weight": float(weight)}


def create_prompt_call(name: object, template: object) -> _Call:
    body = {"name": check_label("name", name), "template": _template(template)}
    return _Call("POST", "/v1/prompts", body, _decode_prompt, "prompt")


def get_prompt_call(prompt_id_or_name: object) -> _Call:
    key = check_id("prompt", prompt_id_or_name)
    return _Call("GET", f"/v1/prompts/{_part(key)}", None, _decode_prompt, "prompt")


def list_prompts_call() -> _Call:
    return _Call("GET", "/v1/prompts", None, _decode_prompts, "prompt list")


def add_version_call(prompt_id: object, template: object) -> _Call:
    path = f"/v1/prompts/{_part(check_id('prompt_id', prompt_id))}/versions"
    return _Call("POST", path, {"template": _template(template)}, _decode_version, "version")


def create_experiment_call(prompt_id: object, variants: object, name: object) -> _Call:
    if isinstance(variants, (str, bytes)) or not isinstance(variants, Sequence):
        raise ArgumentTypeError("variants", f"must be a list of variants, got {type(variants).__name__}")
    if not 0 < len(variants) <= MAX_VARIANTS:
        raise InvalidArgumentError("variants", f"must hold 1 to {MAX_VARIANTS} variants, got {len(variants)}")
    body: dict[str, Any] = {"prompt_id": check_id("prompt_id", prompt_id), "variants": [_variant(v) for v in variants]}
    if name is not None:
        body["name"] = check_label("name", name)
    return _Call("POST", "/v1/experiments", body, _decode_experiment, "experiment")


def list_experiments_call(prompt_id: object) -> _Call:
    query = "" if prompt_id is None else f"?prompt_id={_part(check_id('prompt_id', prompt_id))}"
    return _Call("GET", f"/v1/experiments{query}", None, _decode_experiments, "experiment list")


def get_experiment_call(experiment_id: object) -> _Call:
    path = f"/v1/experiments/{_part(check_id('experiment_id', experiment_id))}"
    return _Call("GET", path, None, _decode_experiment, "experiment")


def end_experiment_call(experiment_id: object) -> _Call:
    path = f"/v1/experiments/{_part(check_id('experiment_id', experiment_id))}/end"
    return _Call("POST", path, None, _decode_experiment, "experiment")


def timeseries_call(experiment_id: object) -> _Call:
    path = f"/v1/experiments/{_part(check_id('experiment_id', experiment_id))}/timeseries"
    return _Call("GET", path, None, _decode_timeseries, "timeseries")


def prompt_by_name(prompts: PromptList, name: str, error: NotFoundError) -> Prompt:
    for prompt in prompts.prompts:
        if prompt.name == name:
            return prompt
    raise error


class Prompts:
    """``client.prompts``: create, get (by id or name), list prompts and add versions.

    Example:
        ```python
        prompt = client.prompts.create("greeting", "Hello {{name}}!")
        client.prompts.add_version(prompt.prompt_id, "Hi {{name}}, welcome back")
        assert client.prompts.get("greeting").latest_version == 2
        ```
    """

    def __init__(self, client: PromptStreamClient) -> None:
        self._client = client

    def create(
        self,
        name: str,
        template: str,
        *,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> Prompt:
        """Create a prompt (version 1 is ``template``) and its default experiment.

        Example:
            ```python
            prompt = client.prompts.create("greeting", "Hello {{name}}!")
            ```
        """
        result: Prompt = self._client._send(create_prompt_call(name, template), timeout, max_retries, extra_headers)
        return result

    def get(
        self,
        prompt: str,
        *,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> Prompt:
        """The prompt whose id is ``prompt``, else the one whose name is. Raises ``PromptNotFoundError``.

        Example:
            ```python
            prompt = client.prompts.get("greeting")  # an id works too
            ```
        """
        try:
            result: Prompt = self._client._send(get_prompt_call(prompt), timeout, max_retries, extra_headers)
        except NotFoundError as exc:
            listed: PromptList = self._client._send(list_prompts_call(), timeout, max_retries, extra_headers)
            return prompt_by_name(listed, prompt, exc)
        return result

    def list(
        self,
        *,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> builtins.list[Prompt]:
        """Every prompt, with its versions.

        Example:
            ```python
            names = [prompt.name for prompt in client.prompts.list()]
            ```
        """
        listed: PromptList = self._client._send(list_prompts_call(), timeout, max_retries, extra_headers)
        return listed.prompts

    def add_version(
        self,
        prompt_id: str,
        template: str,
        *,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> PromptVersion:
        """Add a version to a prompt; the live experiment keeps serving what it served.

        Example:
            ```python
            version = client.prompts.add_version(prompt.prompt_id, "Hi {{name}}!")
            ```
        """
        call = add_version_call(prompt_id, template)
        result: PromptVersion = self._client._send(call, timeout, max_retries, extra_headers)
        return msgspec.structs.replace(result, template=call.body["template"]) if call.body else result


class Experiments:
    """``client.experiments``: create, list, get and end experiments (results: ``get_experiment_results``).

    Example:
        ```python
        experiment = client.experiments.create(prompt.prompt_id, [(1, 1.0), (2, 1.0)], name="tone")
        assert client.experiments.get(experiment.experiment_id).active
        ```
    """

    def __init__(self, client: PromptStreamClient) -> None:
        self._client = client

    def create(
        self,
        prompt_id: str,
        variants: Sequence[Variant | tuple[int, float] | int],
        *,
        name: str | None = None,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> Experiment:
        """Start an experiment on ``prompt_id``'s versions (the first variant is the control); it ends the
        prompt's live experiment. A variant is a ``Variant``, ``(version, weight)`` or a version (weight 1).

        Example:
            ```python
            experiment = client.experiments.create(prompt.prompt_id, [(1, 1.0), (2, 1.0)], name="tone")
            ```
        """
        call = create_experiment_call(prompt_id, variants, name)
        result: Experiment = self._client._send(call, timeout, max_retries, extra_headers)
        return result

    def list(
        self,
        prompt_id: str | None = None,
        *,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> builtins.list[Experiment]:
        """Every experiment, or those of ``prompt_id``.

        Example:
            ```python
            live = [e for e in client.experiments.list(prompt.prompt_id) if e.active]
            ```
        """
        listed: ExperimentList = self._client._send(
            list_experiments_call(prompt_id), timeout, max_retries, extra_headers
        )
        return listed.experiments

    def get(
        self,
        experiment_id: str,
        *,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> Experiment:
        """One experiment. Raises ``NotFoundError``.

        Example:
            ```python
            assert client.experiments.get(experiment.experiment_id).active
            ```
        """
        call = get_experiment_call(experiment_id)
        result: Experiment = self._client._send(call, timeout, max_retries, extra_headers)
        return result

    def end(
        self,
        experiment_id: str,
        *,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> Experiment:
        """End an experiment: it stops taking runs (``active`` False, ``ended_at`` set), and when it was the
        prompt's live one the server starts a new default experiment serving the latest version. Idempotent: ending
        an ended experiment returns it unchanged. Events for its runs are still accepted. Raises ``NotFoundError``.

        Example:
            ```python
            experiment = client.experiments.create(prompt_id, [1])
            ended = client.experiments.end(experiment.experiment_id)
            assert not ended.active and ended.ended_at is not None
            ```
        """
        call = end_experiment_call(experiment_id)
        result: Experiment = self._client._send(call, timeout, max_retries, extra_headers)
        return result

    def timeseries(
        self,
        experiment_id: str,
        *,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> builtins.list[TimeseriesRow]:
        """The experiment day by day (UTC) and variant: runs, users and conversions that day, and the cumulative
        conversion rate per user with its always-valid interval and lift over the control, oldest day first.
        Raises ``NotFoundError``.

        Example:
            ```python
            for row in client.experiments.timeseries(experiment_id):
                print(row.date, row.variant, row.cumulative_users, row.conversion_rate)
            ```
        """
        answer: ExperimentTimeseries = self._client._send(
            timeseries_call(experiment_id), timeout, max_retries, extra_headers
        )
        return answer.days
