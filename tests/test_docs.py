"""The documentation stays true to the code: every public object carries a docstring with an example that parses,
every error class has its troubleshooting entry, and every option appears in docs/configuration.md with the same
default as the code. (`tox -e docs` builds the site itself, strictly.)"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import re
import textwrap
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptstream import AgentConfig, AsyncPromptStreamClient, PromptStreamClient, PromptStreamError

from .doc_examples import (
    DOCS,
    Example,
    ExampleFailed,
    docstring_examples,
    documented,
    markdown_examples,
    public_objects,
    run_example,
    unresolved_directives,
)
from .helpers import REPO_ROOT

EXAMPLE = re.compile(r"^\s*Example:\n\s*```python\n(?P<code>.*?)\n\s*```", re.MULTILINE | re.DOTALL)


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
    assert len(error_classes()) == 18  # 17 + MissingDependencyError (issue 18: optional extras)


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
    assert len(read) == 8, read  # the client's four; the server's keys, db and prices; the admin password
    missing = sorted(name for name in read if f"`{name}`" not in table)
    assert not missing, f"docs/configuration.md has no row for {missing}"


ALL_EXAMPLES = docstring_examples() + markdown_examples()
# Examples that cannot run by nature (a server that serves until interrupted, ...): few, each saying why.
MAX_NO_RUN = 4


@pytest.mark.parametrize("example", ALL_EXAMPLES, ids=lambda example: example.where[:70])
def test_every_example_in_the_docs_parses(example: Example) -> None:
    try:
        ast.parse(example.code)
    except SyntaxError as exc:  # pragma: no cover - the message is the point
        pytest.fail(f"{example.where}: {exc}\n{example.code}")


@pytest.mark.parametrize(
    "example", [e for e in ALL_EXAMPLES if e.no_run is None], ids=lambda example: example.where[:70]
)
def test_every_example_in_the_docs_runs_against_the_reference_server(example: Example, tmp_path: Path) -> None:
    run_example(example, tmp_path)


def test_examples_that_do_not_run_are_few_and_say_why() -> None:
    marked = {example.where: example.no_run for example in ALL_EXAMPLES if example.no_run is not None}
    assert all(why and why != "(no reason given)" for why in marked.values()), marked
    assert len(marked) <= MAX_NO_RUN, f"{len(marked)} examples are marked `# doc: no-run`: {marked}"


def test_every_object_the_reference_pages_render_exists() -> None:
    assert not unresolved_directives()


def test_the_runner_finds_every_documented_example() -> None:
    owners = {example.owner for example in ALL_EXAMPLES}
    documented_names = {name for name, _ in documented()}
    assert documented_names <= owners, sorted(documented_names - owners)
    assert {"README.md", "docs/index.md"} <= owners
    assert sum(example.owner == "promptstream.server.Store" for example in ALL_EXAMPLES) >= 1


wrong_calls = st.sampled_from(
    [
        'client.run_prompt("PROMPT_ID", {"text": "Hi"}, user_id="user_123")',  # no such keyword
        'client.track_click(run.run_id, run.experiment_id, lable="copy")',
        "results.variant('v1').conversion.per_user.rat",  # no such attribute
        'client.track_rating(run.run_id, run.experiment_id, rating="5")',  # wrong type
        'client.run_prompt("PROMPT_ID", {"text": "Hi"}).outptu',
        "undefined_helper(client)",  # a name nobody defines
        "from promptstream import PromptStreamClientt",
    ]
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    call=wrong_calls | st.from_regex(r"client\.[a-z]{4,12}_[a-z]{3,8}\(\)", fullmatch=True),
    where=st.sampled_from(["promptstream.PromptStreamClient.run_prompt#0", "docs/index.md#0"]),
)
def test_a_wrong_call_in_an_example_fails_it(call: str, where: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """What the runner exists for: an example that calls what the SDK does not have cannot pass."""
    owner = where.split("#")[0]
    with pytest.raises(ExampleFailed, match=re.escape(where)):
        run_example(Example(where, owner, call + "\n", None), tmp_path_factory.mktemp("wrong"))


# -- the site: links between pages, attribute descriptions ----------------------------------------------------------


def load_site_hooks() -> Any:
    spec = importlib.util.spec_from_file_location("site_hooks", DOCS / ".mkdocs" / "hooks.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


page_names = st.from_regex(r"[a-z][a-z_-]{0,12}(/[a-z][a-z_-]{0,8})?\.md", fullmatch=True)
prose = st.text(alphabet="abc ,;:()", max_size=20)


@settings(max_examples=60, deadline=None)
@given(page=page_names, before=prose, after=prose, known=st.booleans())
def test_a_page_a_docstring_mentions_becomes_a_link_on_the_site(
    page: str, before: str, after: str, known: bool
) -> None:
    hooks = load_site_hooks()
    url_of = {page: f"../{page[:-3]}/"}.get if known else (lambda path: None)
    html = f"<p>{before}(docs/{page}){after}</p><p><code>docs/{page}</code> <a href='x'>docs/{page}</a></p>"
    linked = hooks.link_mentions(html, url_of)
    if known:
        assert f'(<a href="../{page[:-3]}/">docs/{page}</a>)' in linked
    else:
        assert linked == html  # left as written, and the strict build fails on the warning
    assert f"<code>docs/{page}</code>" in linked and f"<a href='x'>docs/{page}</a>" in linked


def markdown_outside_code(text: str) -> str:
    text = re.sub(r"^(```|~~~).*?^\1", "", text, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "", text)


@pytest.mark.parametrize("page", sorted(DOCS.glob("*.md")), ids=lambda path: path.name)
def test_pages_link_to_each_other_rather_than_naming_a_path(page: Path) -> None:
    """GitHub and the site both render [text](delivery.md) as a link; "(docs/delivery.md)" is plain text on both."""
    prose_only = re.sub(r"\]\([^)]*\)", "]()", markdown_outside_code(page.read_text()))
    assert not re.findall(r"docs/[\w/-]+\.md", prose_only), page.name


@pytest.mark.parametrize("page", [REPO_ROOT / "README.md", *sorted(DOCS.rglob("*.md"))], ids=lambda path: path.name)
def test_every_relative_link_in_the_markdown_points_at_a_file(page: Path) -> None:
    text = markdown_outside_code(page.read_text())
    for target in re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", text):
        if "://" in target or target.startswith("mailto:"):
            continue
        assert (page.parent / target).exists(), f"{page.relative_to(REPO_ROOT)} links to {target}, which is missing"


# Structs whose fields have no description yet (in the SDK's files); the lead empties this list.
FIELDS_UNDESCRIBED_YET = {"Event", "ExperimentResults", "VariantResult", "SampleRatio", "VariantSpec"}


def undescribed_fields(cls: type) -> list[str]:
    """Fields of a Struct without an attribute docstring (the string right after the field, which mkdocstrings
    shows) and not named in an "Attributes:" section of the class docstring."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    attributes_section = (cls.__doc__ or "").partition("Attributes:")[2]
    missing = []
    for node, following in zip(body, [*body[1:], None], strict=True):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            described = isinstance(following, ast.Expr) and isinstance(getattr(following, "value", None), ast.Constant)
            if not described and not re.search(rf"^\s*{node.target.id}\b", attributes_section, re.M):
                missing.append(node.target.id)
    return missing


STRUCTS = [obj for _, obj in public_objects() if isinstance(obj, type) and issubclass(obj, msgspec.Struct)]


@pytest.mark.parametrize("cls", STRUCTS, ids=lambda cls: cls.__name__)
def test_every_field_of_a_public_model_has_a_description_on_the_site(cls: type) -> None:
    missing = undescribed_fields(cls)
    if cls.__name__ in FIELDS_UNDESCRIBED_YET:
        assert missing, f"{cls.__name__}'s fields are all described now: take it off FIELDS_UNDESCRIBED_YET"
    else:
        assert not missing, f"{cls.__name__}: no description for {missing}"
    assert "RunResponse" not in FIELDS_UNDESCRIBED_YET
