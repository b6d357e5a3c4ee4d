"""What produces a run's output: the ``ModelProvider`` seam, the offline default that renders the template, the
figures a run records (latency, tokens; ``Completion``), and the size a rendering would have, known before anything
is built."""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass
from typing import Any, Protocol

from ._pricing import Prices

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_TOKEN = re.compile(r"\w+|[^\w\s]")
MAX_RECORDED = 1e9  # a recorded latency (ms) or token count beyond this is no measurement: it is not stored


@dataclass(frozen=True, slots=True)
class Completion:
    """What a provider may return instead of a bare string: the output and what the model reported about it. Any
    figure left None is not recorded (the server measures ``latency_ms`` itself when the provider does not).

    Example:
        ```python
        Completion("Hello Ada!", input_tokens=12, output_tokens=4, latency_ms=310.0, model="gpt-4o-mini")
        ```
    """

    output: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    latency_ms: float | None = None
    model: str | None = None
    """The model's name, for its price (``promptstream serve --price MODEL=IN/OUT``)."""


class ModelProvider(Protocol):
    """What produces a run's output. The default renders the template offline and deterministically. The server
    calls it on a worker thread, holding no lock: a slow model delays only its own run.

    Example:
        ```python
        class Shouting:
            def complete(self, template: str, inputs: dict[str, Any]) -> str:
                return template.upper()

        store = Store(provider=Shouting())
        ```
    """

    def complete(self, template: str, inputs: dict[str, Any]) -> str | Completion:
        """The output of one run: ``template`` (the served version's) rendered with the run's ``inputs``; a
        ``Completion`` to report the tokens, the model and its own latency as well.

        Example:
            ```python
            output = provider.complete("Hello {{name}}", {"name": "Ada"})
            ```
        """
        ...


class TemplateProvider:
    """The offline default: the output is the template with its ``{{name}}`` placeholders filled in, and the
    figures are deterministic stand-ins for a model's: one token per word or punctuation mark of the prompt (input)
    and of the output, a latency of ``200 ms + 20 ms per output token``, and the model name ``"template"``.

    Example:
        ```python
        assert TemplateProvider().complete("Hello {{name}}!", {"name": "Ada"}).output == "Hello Ada!"
        ```
    """

    MODEL = "template"

    def __init__(self) -> None:
        self.calls: int = 0

    def complete(self, template: str, inputs: dict[str, Any]) -> Completion:
        """``template`` with each ``{{name}}`` replaced by ``inputs[name]`` (non-strings as JSON).

        Example:
            ```python
            TemplateProvider().complete("{{n}} items", {"n": 3}).output  # '3 items'
            ```
        """
        self.calls += 1
        output = _PLACEHOLDER.sub(lambda m: input_text(inputs[m.group(1)]), template)
        tokens = count_tokens(output)
        return Completion(output, tokens, tokens, 200.0 + 20.0 * tokens, self.MODEL)


def count_tokens(text: str) -> int:
    """The offline provider's token count: words and punctuation marks.

    Example:
        ```python
        assert count_tokens("Hello, Ada!") == 4
        ```
    """
    return sum(1 for _ in _TOKEN.finditer(text))


def _recorded(value: object, kind: type[int] | type[float]) -> Any:
    """A provider's figure if it is a plausible measurement (a non-negative finite number of the right kind)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or (kind is int and not isinstance(value, int)):
        return None
    number = float(value)
    return value if math.isfinite(number) and 0.0 <= number <= MAX_RECORDED else None


def run_metrics(completion: Completion, prices: Prices, prompt: tuple[str, ...]) -> dict[str, Any]:
    """The figures a run records and its response carries: latency, tokens, and the cost where a price applies
    (the prompt's, by id or name, else the model's)."""
    cost = prices.cost(completion.model, prompt, completion.input_tokens, completion.output_tokens)
    return {
        "latency_ms": completion.latency_ms,
        "input_tokens": completion.input_tokens,
        "output_tokens": completion.output_tokens,
        "cost_usd": cost,
    }


def call_model(provider: ModelProvider, template: str, inputs: dict[str, Any]) -> Completion:
    """Call the provider (the caller holds no lock) and return its output with the figures to record: the
    provider's own where it reports them, the measured wall-clock latency otherwise. A provider that returns
    neither a str nor a ``Completion`` of one is a bug: TypeError."""
    started = time.perf_counter()
    answer = provider.complete(template, inputs)
    elapsed = (time.perf_counter() - started) * 1000.0
    if isinstance(answer, str):
        return Completion(answer, latency_ms=elapsed)
    if not isinstance(answer, Completion) or not isinstance(answer.output, str):
        raise TypeError(f"the model provider returned {type(answer).__name__}, not str or Completion")
    latency = _recorded(answer.latency_ms, float)
    return Completion(
        answer.output,
        _recorded(answer.input_tokens, int),
        _recorded(answer.output_tokens, int),
        float(latency) if latency is not None else elapsed,
        answer.model if isinstance(answer.model, str) else None,
    )


def input_text(value: Any) -> str:
    """How an input value appears in a rendered template: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def template_inputs(template: str) -> list[str]:
    """The names of a template's placeholders, sorted, each once.

    Example:
        ```python
        assert template_inputs("{{b}} and {{ a }} and {{b}}") == ["a", "b"]
        ```
    """
    return sorted(set(_PLACEHOLDER.findall(template)))


def rendered_size(template: str, inputs: dict[str, Any]) -> int:
    """The UTF-8 size of ``template`` rendered with ``inputs``, computed without building it: 2,000 placeholders
    over a 10 KB input would otherwise allocate 20 MB just to learn that it is too large.

    Example:
        ```python
        assert rendered_size("Hi {{name}}", {"name": "Ada"}) == len("Hi Ada")
        ```
    """
    sizes: dict[str, int] = {}
    size = len(template.encode("utf-8", "surrogatepass"))
    for match in _PLACEHOLDER.finditer(template):
        name = match.group(1)
        if name not in sizes:
            sizes[name] = len(input_text(inputs[name]).encode("utf-8", "surrogatepass"))
        size += sizes[name] - len(match.group(0))  # a placeholder is ASCII: its length is its size
    return size
