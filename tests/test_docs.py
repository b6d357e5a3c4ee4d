"""The documentation stays true to the code: every public object carries a docstring with an example that parses,
every error class has its troubleshooting entry, and every option appears in docs/configuration.md with the same
default as the code. (`tox -e docs` builds the site itself, strictly.)"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

import promptstream
import promptstream.server
import promptstream.testing
from promptstream import AgentConfig, AsyncPromptStreamClient, PromptStreamClient, PromptStreamError

from .helpers import REPO_ROOT

DOCS = REPO_ROOT / "docs"
EXAMPLE = re.compile(r"^\s*Example:\n\s*```python\n(?P<code>.*?)\n\s*```", re.MULTILINE | re.DOTALL)


def public_objects() -> Iterator[tuple[str, Any]]:
    """The classes and functions of the SDK, its testing helpers, and the reference server (constants aside)."""
    for module in (promptstream, promptstream.testing, promptstream.server):
        for name in module.__all__:
            obj = getattr(module, name)
            if isinstance(obj, type) or callable(obj):
                yield f"{module.__name__}.{name}", obj


def public_methods(cls: type) -> Iterator[tuple[str, Any]]:
    """Methods and properties a user calls, including those a public class inherits from a private base."""
    for klass in cls.__mro__:
        if not klass.__module__.startswith("promptstream"):
            continue
        for name, member in vars(klass).items():
            if not name.startswith("_") and (callable(member) or isinstance(member, property)):
                yield f"{cls.__name__}.{name}", member


def documented() -> Iterator[tuple[str, str | None]]:
    for qualname, obj in public_objects():
        yield qualname, vars(obj).get("__doc__") if isinstance(obj, type) else obj.__doc__
        if isinstance(obj, type) and not issubclass(obj, BaseException):
            for method_name, method in dict(public_methods(obj)).items():
                yield method_name, method.__doc__
    fixture_source = (REPO_ROOT / "promptstream" / "testing" / "pytest_plugin.py").read_text()
    for node in ast.parse(fixture_source).body:
        if isinstance(node, ast.FunctionDef):
            yield f"pytest fixture {node.name}", ast.get_docstring(node, clean=False)


@pytest.mark.parametrize(("name", "docstring"), list(documented()), ids=lambda value: str(value)[:60])
def test_every_public_object_has_a_docstring_with_an_example_that_parses(name: str, docstring: str | None) -> None:
    assert docstring, f"{name} has no docstring"
    example = EXAMPLE.search(inspect.cleandoc(docstring))
    assert example, f"{name}: no 'Example:' section with a ```python block"
    code = textwrap.dedent(example["code"])
    try:
        ast.parse(code)
    except SyntaxError as exc:  # pragma: no cover - the message is the point
        pytest.fail(f"{name}: its example does not parse: {exc}\n{code}")


def test_the_audit_sees_the_methods_a_client_inherits() -> None:
    names = {name for name, _ in documented()}
    assert "PromptStreamClient.track_click" in names and "AsyncPromptStreamClient.aclose" in names


def error_classes() -> list[type[PromptStreamError]]:
    return [obj for _, obj in public_objects() if isinstance(obj, type) and issubclass(obj, PromptStreamError)]


def test_troubleshooting_has_an_entry_for_every_error_class() -> None:
    headings = re.findall(r"^#+ `?(\w+)`?", (DOCS / "troubleshooting.md").read_text(), re.MULTILINE)
    missing = [cls.__name__ for cls in error_classes() if cls.__name__ not in headings]
    assert not missing, f"docs/troubleshooting.md has no heading for {missing}"
    assert len(error_classes()) == 16


def test_the_clients_agent_keywords_default_to_agent_config() -> None:
    """An agent keyword left at None takes agent_config's value (or AgentConfig's default): one source of defaults."""
    agent_defaults = {field.name: field.default for field in msgspec.structs.fields(AgentConfig)}
    for client in (PromptStreamClient, AsyncPromptStreamClient):
        for name, parameter in inspect.signature(client).parameters.items():
            if name in agent_defaults:
                assert parameter.default is None, f"{client.__name__}({name}=...)"


def test_configuration_md_lists_every_option_with_the_codes_default() -> None:
    text = (DOCS / "configuration.md").read_text()
    client_table = text.split("## Client options")[1].split("\n## ")[0]
    agent_table = text.split("## `AgentConfig`")[1].split("\n## ")[0]
    for name, parameter in inspect.signature(PromptStreamClient).parameters.items():
        assert f"| `{name}` |" in client_table, f"docs/configuration.md: client option {name} is missing"
        if isinstance(parameter.default, (int, float, str)) and not isinstance(parameter.default, bool):
            row = next(line for line in client_table.splitlines() if line.startswith(f"| `{name}` |"))
            assert f"`{parameter.default!r}`".replace("'", '"') in row.replace(" s |", " |").replace(" s ", " ")
    for field in msgspec.structs.fields(AgentConfig):
        row = next((line for line in agent_table.splitlines() if line.startswith(f"| `{field.name}` |")), None)
        assert row, f"docs/configuration.md: AgentConfig.{field.name} is missing"
        if field.default is not None and not isinstance(field.default, bool):
            assert f"`{field.default!r}`".replace("'", '"') in row, f"AgentConfig.{field.name}: {row}"


def test_configuration_md_lists_every_environment_variable_the_code_reads() -> None:
    """Every PROMPTSTREAM_* name the package reads from os.environ has a row in the environment table."""
    table = (DOCS / "configuration.md").read_text().split("## Environment variables")[1]
    read: set[str] = set()
    for path in (REPO_ROOT / "promptstream").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            # ENV_X = "PROMPTSTREAM_X" constants, and literal os.environ["..."] / os.environ.get("...") reads
            if isinstance(node, ast.Assign) and any(
                isinstance(target, ast.Name) and target.id.startswith("ENV_") for target in node.targets
            ):
                value = node.value
            elif isinstance(node, ast.Subscript) and getattr(node.value, "attr", None) == "environ":
                value = node.slice
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "get"
                and getattr(node.func.value, "attr", None) == "environ"
                and node.args
            ):
                value = node.args[0]
            else:
                continue
            if isinstance(value, ast.Constant) and str(value.value).startswith("PROMPTSTREAM_"):
                read.add(value.value)
    assert len(read) == 5, read  # the scan finds what it should: the client's four and the server's keys
    missing = sorted(name for name in read if f"`{name}`" not in table)
    assert not missing, f"docs/configuration.md has no row for {missing}"


def python_blocks() -> Iterator[tuple[str, str]]:
    for path in [REPO_ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]:
        for number, block in enumerate(re.findall(r"^```python\n(.*?)^```", path.read_text(), re.M | re.S)):
            yield f"{path.relative_to(REPO_ROOT)}#{number}", block


@pytest.mark.parametrize(("where", "code"), list(python_blocks()), ids=lambda value: str(value)[:40])
def test_python_in_the_docs_parses(where: str, code: str) -> None:
    try:
        ast.parse(code)
    except SyntaxError as exc:  # pragma: no cover - the message is the point
        pytest.fail(f"{where}: {exc}\n{code}")
