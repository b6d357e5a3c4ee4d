"""What produces a run's output: the ``ModelProvider`` seam, the offline default that renders the template, and the
size a rendering would have, known before anything is built."""

from __future__ import annotations

import json
import re
from typing import Any, Protocol

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


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

    def complete(self, template: str, inputs: dict[str, Any]) -> str:
        """The output of one run: ``template`` (the served version's) rendered with the run's ``inputs``.

        Example:
            ```python
            output = provider.complete("Hello {{name}}", {"name": "Ada"})
            ```
        """
        ...


class TemplateProvider:
    """The offline default: the output is the template with its ``{{name}}`` placeholders filled in.

    Example:
        ```python
        assert TemplateProvider().complete("Hello {{name}}!", {"name": "Ada"}) == "Hello Ada!"
        ```
    """

    def __init__(self) -> None:
        self.calls: int = 0

    def complete(self, template: str, inputs: dict[str, Any]) -> str:
        """``template`` with each ``{{name}}`` replaced by ``inputs[name]`` (non-strings as JSON).

        Example:
            ```python
            TemplateProvider().complete("{{n}} items", {"n": 3})  # '3 items'
            ```
        """
        self.calls += 1
        return _PLACEHOLDER.sub(lambda m: input_text(inputs[m.group(1)]), template)


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
