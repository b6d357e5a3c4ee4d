"""A LangChain callback handler that records every LLM call of a chain or an agent as PromptStream records a
``run_prompt``: the server's sticky assignment of the user to a prompt version in the prompt's live experiment
(``client.assign``, a run without output), so the app can ``track_*`` outcomes against it and they count in the
experiment's results. Needs the ``langchain`` extra (``langchain-core``).

Example:
    ```python
    # doc: no-run: needs a chat model
    from promptstream.integrations.langchain import PromptStreamCallbackHandler

    handler = PromptStreamCallbackHandler(client, "PROMPT_ID", external_user_id="user_123")
    answer = chain.invoke({"question": "Hi"}, config={"callbacks": [handler]})
    call = handler.last_call
    client.track_conversion(call.run_id, call.experiment_id)
    ```

Per call, ``config={"metadata": {"promptstream_prompt_id": ..., "promptstream_user_id": ...}}`` overrides the
handler's prompt and user, so one handler can serve a whole app. To make the chain send the assigned version's
text, assign first and build the chain's prompt from it (PromptStream's ``{{name}}`` placeholders are LangChain's
``template_format="mustache"``), then give the handler that assignment: ``PromptStreamCallbackHandler(client,
assignment=assignment)`` records every LLM call against it without assigning again (docs/recipes.md, LangChain).
A failed assignment (the server unreachable) never breaks the chain: the call is recorded with its ``error`` and
LangChain goes on.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from uuid import UUID

from .._assign import Assignment
from .._errors import ArgumentTypeError, InvalidArgumentError, MissingDependencyError, PromptStreamError

try:
    from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler
    from langchain_core.outputs import LLMResult
except ImportError as _missing:  # tests/test_langchain.py runs this in a process without langchain-core
    raise MissingDependencyError(
        f"the LangChain integration needs langchain-core: pip install 'promptstream[langchain]' ({_missing})",
        extra="langchain",
    ) from None

if TYPE_CHECKING:
    from .._async_client import AsyncPromptStreamClient
    from .._client import PromptStreamClient

__all__ = ["AsyncPromptStreamCallbackHandler", "LLMCall", "PromptStreamCallbackHandler"]

PROMPT_ID_KEY = "promptstream_prompt_id"
USER_ID_KEY = "promptstream_user_id"
_KEEP_CALLS = 1000  # the handler remembers this many calls (oldest forgotten first): a long-lived app stays bounded


@dataclass
class LLMCall:
    """One LLM call of a chain or agent, as the handler recorded it.

    Example:
        ```python
        call = handler.last_call
        if call is not None and call.assignment is not None:
            client.track_feedback(call.run_id, call.experiment_id, thumbs_up=True)
        ```
    """

    langchain_run_id: UUID
    """LangChain's id of the call (``run_id`` in its callbacks and traces)."""
    prompt_id: str
    external_user_id: str | None
    prompts: list[str]
    """What the model was sent: the prompt texts, or the chat messages one per line as ``role: content``."""
    assignment: Assignment | None = None
    """The server's assignment; None when it failed (see ``error``)."""
    output: str | None = None
    """The model's text, once the call ended."""
    token_usage: dict[str, int] = field(default_factory=dict)
    """Token counts the model reported (``input_tokens``/``output_tokens`` or the provider's own names)."""
    error: str | None = None
    """Why the assignment or the model call failed, if either did."""
    model: str | None = None
    """The model's name as LangChain reported it, when it did."""

    @property
    def run_id(self) -> str | None:
        """The PromptStream run id for ``track_*``; None when the assignment failed."""
        return None if self.assignment is None else self.assignment.run_id

    @property
    def experiment_id(self) -> str | None:
        """The experiment for ``track_*``; None when the assignment failed."""
        return None if self.assignment is None else self.assignment.experiment_id

    @property
    def variant_assigned(self) -> str | None:
        """The variant (prompt version) this call belongs to, e.g. ``"v2"``."""
        return None if self.assignment is None else self.assignment.variant_assigned


class _Calls:
    """The recorded calls, bounded and shared by LangChain's threads."""

    def __init__(self, prompt_id: str | None, external_user_id: str | None, assignment: Assignment | None) -> None:
        if assignment is not None:
            if not isinstance(assignment, Assignment):
                raise ArgumentTypeError("assignment", f"must be an Assignment, got {type(assignment).__name__}")
            prompt_id = prompt_id or assignment.prompt_id
            external_user_id = external_user_id or assignment.external_user_id
        if not isinstance(prompt_id, str) or not prompt_id:
            raise InvalidArgumentError("prompt_id", "must be a non-empty str (or give assignment=)")
        self.prompt_id = prompt_id
        self.external_user_id = external_user_id
        self.assignment = assignment
        self._calls: OrderedDict[UUID, LLMCall] = OrderedDict()
        self._lock = threading.Lock()

    def begin(
        self, run_id: UUID, prompts: list[str], metadata: Mapping[str, Any] | None, extra: Mapping[str, Any]
    ) -> LLMCall:
        metadata = metadata or {}
        params = extra.get("invocation_params") or {}
        model = metadata.get("ls_model_name") or params.get("model") or params.get("model_name")
        call = LLMCall(
            langchain_run_id=run_id,
            prompt_id=str(metadata.get(PROMPT_ID_KEY) or self.prompt_id),
            external_user_id=metadata.get(USER_ID_KEY, self.external_user_id),
            prompts=prompts,
            model=None if model is None else str(model),
            assignment=self.assignment,
        )
        with self._lock:
            self._calls[run_id] = call
            while len(self._calls) > _KEEP_CALLS:
                self._calls.popitem(last=False)
        return call

    def get(self, run_id: UUID) -> LLMCall | None:
        with self._lock:
            return self._calls.get(run_id)

    def all(self) -> list[LLMCall]:
        with self._lock:
            return list(self._calls.values())

    def end(self, run_id: UUID, response: LLMResult) -> None:
        call = self.get(run_id)
        if call is not None:
            call.output = "".join(g.text for generations in response.generations for g in generations[:1])
            call.token_usage = _token_usage(response)

    def fail(self, run_id: UUID, error: BaseException) -> None:
        call = self.get(run_id)
        if call is not None and call.error is None:
            call.error = f"{type(error).__name__}: {error}"


def _chat_lines(messages: Sequence[Sequence[Any]]) -> list[str]:
    return ["\n".join(f"{m.type}: {m.content}" for m in conversation) for conversation in messages]


def _token_usage(response: LLMResult) -> dict[str, int]:
    usage: dict[str, int] = {}
    for generations in response.generations:
        for generation in generations:
            metadata = getattr(getattr(generation, "message", None), "usage_metadata", None) or {}
            for name in ("input_tokens", "output_tokens", "total_tokens"):
                if isinstance(metadata.get(name), int):
                    usage[name] = usage.get(name, 0) + metadata[name]
    reported = (response.llm_output or {}).get("token_usage") or {}
    for name, value in reported.items():
        if isinstance(value, int) and not isinstance(value, bool):
            usage.setdefault(name, value)
    return usage


class _Recorder:
    _calls: _Calls

    @property
    def calls(self) -> list[LLMCall]:
        """Every LLM call recorded (the last 1,000), oldest first."""
        return self._calls.all()

    @property
    def last_call(self) -> LLMCall | None:
        """The most recent LLM call, or None before the first."""
        calls = self._calls.all()
        return calls[-1] if calls else None

    def call(self, langchain_run_id: UUID) -> LLMCall | None:
        """The call LangChain identified as ``langchain_run_id``, if remembered."""
        return self._calls.get(langchain_run_id)


class PromptStreamCallbackHandler(_Recorder, BaseCallbackHandler):
    """Records each LLM call of a chain or agent with a ``PromptStreamClient``: its assignment (prompt version and
    experiment, sticky per user) as a run on the server, its output and token usage here (``calls``,
    ``last_call``). Track outcomes with ``client.track_*(call.run_id, call.experiment_id, ...)``.

    Example:
        ```python
        # doc: no-run: needs a chat model
        handler = PromptStreamCallbackHandler(client, "PROMPT_ID", external_user_id="user_123")
        chain.invoke({"question": "Hi"}, config={"callbacks": [handler]})
        ```
    """

    def __init__(
        self,
        client: PromptStreamClient,
        prompt_id: str | None = None,
        external_user_id: str | None = None,
        *,
        assignment: Assignment | None = None,
    ) -> None:
        super().__init__()
        self.client = client
        self._calls = _Calls(prompt_id, external_user_id, assignment)

    def _assign(self, call: LLMCall) -> None:
        if call.assignment is not None:  # the app assigned already (assignment=): every call belongs to it
            return
        try:
            call.assignment = self.client.assign(call.prompt_id, call.external_user_id)
        except PromptStreamError as exc:
            call.error = f"{type(exc).__name__}: {exc}"

    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._assign(self._calls.begin(run_id, list(prompts), metadata, kwargs))

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[Any]],
        *,
        run_id: UUID,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._assign(self._calls.begin(run_id, _chat_lines(messages), metadata, kwargs))

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        self._calls.end(run_id, response)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._calls.fail(run_id, error)


class AsyncPromptStreamCallbackHandler(_Recorder, AsyncCallbackHandler):
    """``PromptStreamCallbackHandler`` for ``ainvoke``/``astream`` with an ``AsyncPromptStreamClient``: the
    assignment is awaited on the chain's event loop, never blocking it.

    Example:
        ```python
        # doc: no-run: needs a chat model
        handler = AsyncPromptStreamCallbackHandler(client, "PROMPT_ID", external_user_id="user_123")
        await chain.ainvoke({"question": "Hi"}, config={"callbacks": [handler]})
        ```
    """

    def __init__(
        self,
        client: AsyncPromptStreamClient,
        prompt_id: str | None = None,
        external_user_id: str | None = None,
        *,
        assignment: Assignment | None = None,
    ) -> None:
        super().__init__()
        self.client = client
        self._calls = _Calls(prompt_id, external_user_id, assignment)

    async def _assign(self, call: LLMCall) -> None:
        if call.assignment is not None:
            return
        try:
            call.assignment = await self.client.assign(call.prompt_id, call.external_user_id)
        except PromptStreamError as exc:
            call.error = f"{type(exc).__name__}: {exc}"

    async def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        await self._assign(self._calls.begin(run_id, list(prompts), metadata, kwargs))

    async def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[Any]],
        *,
        run_id: UUID,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        await self._assign(self._calls.begin(run_id, _chat_lines(messages), metadata, kwargs))

    async def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        self._calls.end(run_id, response)

    async def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._calls.fail(run_id, error)
