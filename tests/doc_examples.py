"""The documentation's Python examples, found and run: every ```python fence in the docstrings the docs site renders
(the objects named by `::: ...` in docs/reference/*.md, their public members, and everything in the public
`__all__` lists) and in README.md and docs/*.md.

An example runs as a reader would run it after the page's set-up: against a real reference server on loopback,
with PROMPTSTREAM_API_KEY / PROMPTSTREAM_BASE_URL / PROMPTSTREAM_SPOOL_DIR pointing at it, and with the names a
page takes for granted already defined (like doctest's globs). The context supplies only the names an example uses
without defining them, so a renamed method, a wrong argument or a name nobody defines fails the example:

- everything in `promptstream.__all__`, `promptstream.testing.__all__` and `promptstream.server.__all__`, and the
  modules and names examples use unimported: os, sys, json, asyncio, logging, httpx, msgspec, Path, Any;
- `client` (a PromptStreamClient from the environment; an AsyncPromptStreamClient in the async client's examples; a
  RecordingClient in its own), `run` / `resp` (a real run of the prompt for "user_123"), `results` (the
  experiment's real results after 24 users' traffic), `prompt_id`, `experiment_id`, `store`, `server`, `provider`,
  `variants`, `events`, `tracked_ids`, `json_encode`, `log`;
- stand-ins for the reader's own code, which the SDK cannot know: `serve_requests`, `alert`, `queue_for_later`,
  `checkout`, `cart`, `huge_document` (over the server's body limit, so the example's except branch runs).

The placeholders a reader replaces are replaced too: "PROMPT_ID" by the prompt's id, "ps_..." by the server's
key, http://127.0.0.1:8700 by the server's URL, and absolute /tmp/ or /var/ paths by paths in the test's tmp dir.

An example that cannot run by nature says so on its first line, `# doc: no-run <why>` (in Markdown, an HTML
comment `<!-- doc: no-run <why> -->` on the line before the fence also works); tests/test_docs.py counts them.
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import contextlib
import importlib
import inspect
import json
import logging
import os
import pkgutil
import re
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

import promptstream
import promptstream.server
import promptstream.testing

from .helpers import API_KEY, REPO_ROOT

DOCS = REPO_ROOT / "docs"
PUBLIC_MODULES = (promptstream, promptstream.testing, promptstream.server)
DOCSTRING_FENCE = re.compile(r"^(?P<indent>[ \t]*)```python[^\n]*\n(?P<code>.*?)^(?P=indent)```", re.M | re.S)
MARKDOWN_FENCE = re.compile(r"^(?P<indent>[ \t]*)```python[^\n]*\n(?P<code>.*?)^(?P=indent)```", re.M | re.S)
NO_RUN_LINE = re.compile(r"^\s*#\s*doc:\s*no-run\b[\s:—-]*(?P<why>.*)$")
NO_RUN_COMMENT = re.compile(r"<!--\s*doc:\s*no-run\b[\s:—-]*(?P<why>.*?)\s*-->\s*$")
PLACEHOLDER_URL = "http://127.0.0.1:8700"
SERVER_NAMES = frozenset(promptstream.server.__all__)
# The client's pages run prompts with {"text": ...}; the server's pages (Store, ServerThread, ...) with {"name": ...}.
TEMPLATES = {"text": ("Reply to {{text}}", "Answer {{text}} in one line"), "name": ("Hello {{name}}!", "Hi {{name}}")}


@dataclass(frozen=True)
class Example:
    where: str  # "promptstream.Store.close#0", "README.md#0"
    owner: str  # the documented object's qualified name, or the Markdown file
    code: str
    no_run: str | None  # why it cannot run, when marked

    @property
    def template_input(self) -> str:
        first = self.owner.removeprefix("promptstream.server.").split(".")[0]
        return "name" if self.owner.startswith("promptstream.server.") or first in SERVER_NAMES else "text"

    @property
    def client_kind(self) -> str:
        short = self.owner.rsplit(".", 2)
        if any(part.startswith("Async") for part in short):  # the async client and its resources
            return "async"
        if "RecordingClient" in short and short[-1] in vars(promptstream.testing.RecordingClient):
            return "recording"  # what RecordingClient inherits (prompts, experiments, with_options) needs a server
        return "sync"


def marked_no_run(code: str, line_before: str = "") -> str | None:
    first = next((line for line in code.splitlines() if line.strip()), "")
    for match in (NO_RUN_LINE.match(first), NO_RUN_COMMENT.search(line_before)):
        if match:
            return match["why"].strip() or "(no reason given)"
    return None


# -- finding them ---------------------------------------------------------------------------------------------------


def resolve(dotted: str) -> Any:
    """The object a `::: dotted.path` directive renders: the longest importable module, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise LookupError(dotted)


def public_members(cls: type) -> Iterator[tuple[str, Any]]:
    """Methods and properties a user calls, including those a public class inherits from a private base."""
    seen: set[str] = set()
    for klass in cls.__mro__:
        if not klass.__module__.startswith("promptstream"):
            continue
        for name, member in vars(klass).items():
            if name.startswith("_") or name in seen:
                continue
            if callable(member) or isinstance(member, (property, cached_property, staticmethod, classmethod)):
                seen.add(name)
                yield f"{cls.__name__}.{name}", member


def public_objects() -> Iterator[tuple[str, Any]]:
    """The classes and functions of the SDK, its testing helpers, and the reference server (constants aside)."""
    for module in PUBLIC_MODULES:
        for name in module.__all__:
            obj = getattr(module, name)
            if isinstance(obj, type) or callable(obj):
                yield f"{module.__name__}.{name}", obj


def reference_directives() -> list[str]:
    """What the API reference pages render: the `::: dotted.path` of docs/reference/*.md."""
    pages = sorted((DOCS / "reference").glob("*.md"))
    return [dotted for page in pages for dotted in re.findall(r"^:::\s*([\w.]+)", page.read_text(), re.M)]


def unresolved_directives() -> list[str]:
    missing = []
    for dotted in reference_directives():
        try:
            resolve(dotted)
        except (LookupError, AttributeError):
            missing.append(dotted)
    return missing


def rendered_objects() -> dict[str, Any]:
    """Qualified name -> object for every object the docs site or the public API shows (a directive naming nothing
    is skipped here, so collection never breaks; unresolved_directives() names it)."""
    objects: dict[str, Any] = dict(public_objects())
    for dotted in reference_directives():
        try:
            obj = resolve(dotted)
        except (LookupError, AttributeError):
            continue
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):  # a pytest fixture: read from its source below
            continue
        if not any(obj is known for known in objects.values()):
            objects[dotted] = obj
    return objects


def docstring_of(obj: Any) -> str | None:
    if isinstance(obj, type):
        return vars(obj).get("__doc__")
    if isinstance(obj, (staticmethod, classmethod)):
        obj = obj.__func__
    if isinstance(obj, cached_property):
        obj = obj.func
    doc = getattr(obj, "__doc__", None)
    if doc is None and hasattr(obj, "__wrapped__"):  # e.g. a pytest fixture
        doc = obj.__wrapped__.__doc__
    return doc if isinstance(doc, str) else None


def documented() -> Iterator[tuple[str, str | None]]:
    """(qualified name, docstring) of every public object and, for classes, of their public members."""
    for qualname, obj in rendered_objects().items():
        yield qualname, docstring_of(obj)
        if isinstance(obj, type) and not issubclass(obj, BaseException):
            for member_name, member in public_members(obj):
                yield member_name, docstring_of(member)
    fixture_source = (REPO_ROOT / "promptstream" / "testing" / "pytest_plugin.py").read_text()
    for node in ast.parse(fixture_source).body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            yield f"pytest fixture {node.name}", ast.get_docstring(node, clean=False)


def docstring_examples() -> list[Example]:
    examples: dict[str, Example] = {}
    for qualname, docstring in documented():
        for number, match in enumerate(DOCSTRING_FENCE.finditer(inspect.cleandoc(docstring or ""))):
            code = textwrap.dedent(match["code"])
            where = f"{qualname}#{number}"
            examples[where] = Example(where, qualname, code, marked_no_run(code))
    return list(examples.values())


def markdown_examples() -> list[Example]:
    found = []
    for path in [REPO_ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]:
        text = path.read_text()
        name = str(path.relative_to(REPO_ROOT))
        for number, match in enumerate(MARKDOWN_FENCE.finditer(text)):
            before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            code = textwrap.dedent(match["code"])
            found.append(Example(f"{name}#{number}", name, code, marked_no_run(code, before)))
    return found


# -- the world an example runs in -----------------------------------------------------------------------------------


def server_internal(name: str) -> Any:
    """A class of the server's own modules (an example of Store's lower-level methods needs its wire types),
    found wherever the server keeps it today."""
    for info in pkgutil.walk_packages(promptstream.server.__path__, "promptstream.server."):
        module = importlib.import_module(info.name)
        if name in vars(module):
            return vars(module)[name]
    raise LookupError(f"promptstream.server has no {name}")


class World:
    """A reference server with one prompt (two versions) in a 50/50 experiment, and whatever an example needs of
    it, built on first use. One per example: examples may close or stop what they are given."""

    def __init__(self, tmp_path: Path, kind: str, template_input: str = "text") -> None:
        self.tmp_path = tmp_path
        self.kind = kind
        self.input = template_input
        self.closers: list[Callable[[], Any]] = []

    def close(self) -> None:
        for closer in reversed(self.closers):
            with contextlib.suppress(Exception):
                closer()

    @cached_property
    def store(self) -> Any:
        store = promptstream.server.Store(self.tmp_path / "world.sqlite3")
        self.closers.append(store.close)
        return store

    @cached_property
    def server(self) -> Any:
        server = promptstream.server.ServerThread(self.store, [API_KEY]).start()
        self.closers.append(server.stop)
        return server

    @cached_property
    def url(self) -> str:
        return str(self.server.url)

    @cached_property
    def prompt(self) -> dict[str, Any]:
        first, second = TEMPLATES[self.input]
        prompt = self.store.create_prompt("default", "reply", first)
        self.store.add_version("default", prompt["prompt_id"], second)
        VariantSpec = promptstream.server.VariantSpec
        experiment = self.store.create_experiment(
            "default", prompt["prompt_id"], [VariantSpec(version=1), VariantSpec(version=2)], name="shorter reply"
        )
        return {"prompt_id": prompt["prompt_id"], "experiment_id": experiment["experiment_id"]}

    @cached_property
    def greeting(self) -> dict[str, Any]:
        """The prompt the management examples name, "greeting" (two versions), with its live experiment."""
        prompt = self.store.create_prompt("default", "greeting", "Hello {{name}}!")
        self.store.add_version("default", prompt["prompt_id"], "Hi {{name}}, welcome back")
        VariantSpec = promptstream.server.VariantSpec
        experiment = self.store.create_experiment(
            "default", prompt["prompt_id"], [VariantSpec(version=1), VariantSpec(version=2)], name="tone"
        )
        return {"prompt_id": prompt["prompt_id"], "experiment_id": experiment["experiment_id"]}

    def management_client(self) -> promptstream.PromptStreamClient:
        self.greeting  # noqa: B018 - what the examples look up must exist
        return self.seeder

    @cached_property
    def seeder(self) -> promptstream.PromptStreamClient:
        client = promptstream.PromptStreamClient(
            API_KEY, base_url=self.url, spool_dir=self.tmp_path / "seed-spool", flush_interval=0.05
        )
        self.closers.append(lambda: client.close(timeout=2))
        return client

    @cached_property
    def tracked_ids(self) -> list[str]:
        """24 users' traffic through the SDK, every kind of event, delivered before the example starts."""
        ids = []
        for user in range(24):
            run = self.seeder.run_prompt(
                self.prompt["prompt_id"], {self.input: f"hi {user}"}, external_user_id=f"u{user}"
            )
            ids.append(self.seeder.track_click(run.run_id, run.experiment_id, label="copy"))
            ids.append(self.seeder.track_feedback(run.run_id, run.experiment_id, thumbs_up=user % 3 != 0))
            ids.append(self.seeder.track_rating(run.run_id, run.experiment_id, rating=1.0 + user % 5))
            ids.append(self.seeder.track_engagement(run.run_id, run.experiment_id, engagement_score=float(user)))
            if user % 2:
                ids.append(self.seeder.track_conversion(run.run_id, run.experiment_id, label="signup"))
        assert self.seeder.flush(timeout=30), self.seeder.stats()
        return ids

    @cached_property
    def client(self) -> Any:
        if self.kind == "recording":
            client: Any = promptstream.testing.RecordingClient()
        elif self.kind == "async":
            client = promptstream.AsyncPromptStreamClient()  # from the environment, like the examples' own
        else:
            client = promptstream.PromptStreamClient()
        if self.kind == "async":
            self.closers.append(lambda: asyncio.run(client.aclose()))
        else:
            self.closers.append(lambda: client.close(timeout=2))
        return client

    @cached_property
    def run(self) -> Any:
        runner = self.client if self.kind == "recording" else self.seeder
        return runner.run_prompt(self.prompt["prompt_id"], {self.input: "Hi"}, external_user_id="user_123")

    @cached_property
    def results(self) -> Any:
        self.tracked_ids  # noqa: B018 - results of an experiment with traffic
        return self.seeder.get_experiment_results(self.prompt["experiment_id"])

    def provide(self, name: str) -> Any:
        """The value of a name the context supplies; LookupError for any other."""
        providers: dict[str, Callable[[], Any]] = {
            "client": lambda: self.client,
            "run": lambda: self.run,
            "resp": lambda: self.run,
            "results": lambda: self.results,
            "prompt_id": lambda: self.prompt["prompt_id"],
            "experiment_id": lambda: self.prompt["experiment_id"],
            "prompt": lambda: self.management_client().prompts.get(self.greeting["prompt_id"]),
            "experiment": lambda: self.management_client().experiments.get(self.greeting["experiment_id"]),
            "sink": promptstream.testing.RecordingSink,
            "store": lambda: (self.prompt, self.store)[1],
            "server": lambda: (self.prompt, self.server)[1],
            "provider": promptstream.server.TemplateProvider,
            "variants": lambda: [
                server_internal("Variant")(version=spec["version"], weight=spec["weight"])
                for spec in self.store.get_experiment("default", self.prompt["experiment_id"])["variants"]
            ],
            "events": self.wire_events,
            "tracked_ids": lambda: self.tracked_ids,
            "json_encode": lambda: msgspec.json.encode,
            "log": lambda: logging.getLogger("myapp"),
            "promptstream_client": lambda: self.recording_client(),
            # stand-ins for the reader's own code
            "serve_requests": lambda: self.serve_requests,
            "alert": lambda: lambda message: logging.getLogger("myapp").error("ALERT %s", message),
            "queue_for_later": lambda: lambda **kwargs: None,
            "cart": lambda: {"items": [{"sku": "A1", "quantity": 1}]},
            "checkout": lambda: self.checkout,
            "huge_document": lambda: "x" * (promptstream.server.DEFAULT_MAX_BODY_BYTES + 1),
        }
        if name not in providers:
            raise LookupError(name)
        return providers[name]()

    def recording_client(self) -> Any:
        client = promptstream.testing.RecordingClient()
        self.closers.append(lambda: client.close(timeout=2))
        return client

    def serve_requests(self, client: Any) -> None:
        run = client.run_prompt(self.prompt["prompt_id"], {self.input: "Hi"}, external_user_id="user_123")
        client.track_click(run.run_id, run.experiment_id, label="copy")

    def checkout(self, cart: dict[str, Any], *, promptstream: Any) -> None:
        run = promptstream.run_prompt(self.prompt["prompt_id"], {self.input: json.dumps(cart)}, external_user_id="ada")
        promptstream.track_conversion(run.run_id, run.experiment_id, label="purchase")

    def wire_events(self) -> list[Any]:
        run = self.run
        event_type = server_internal("EventBody")
        events = [
            {
                "event_id": str(uuid.uuid4()),
                "type": "click",
                "prompt_run_id": run.run_id,
                "experiment_id": run.experiment_id,
                "timestamp": "2026-01-01T00:00:00Z",
                "label": "copy",
            }
        ]
        return msgspec.convert(events, list[event_type])

    def environment(self) -> dict[str, str]:
        return {
            "PROMPTSTREAM_API_KEY": API_KEY,
            "PROMPTSTREAM_BASE_URL": self.url,
            "PROMPTSTREAM_SPOOL_DIR": str(self.tmp_path / "spool"),
            "PROMPTSTREAM_USER_SALT": "doc-example-salt",
        }


# -- running one --------------------------------------------------------------------------------------------------


def static_names() -> dict[str, Any]:
    names: dict[str, Any] = {"os": os, "sys": sys, "json": json, "asyncio": asyncio, "logging": logging}
    names.update({"httpx": httpx, "msgspec": msgspec, "pytest": pytest, "Path": Path, "Any": Any})
    for module in PUBLIC_MODULES:
        names.update({name: getattr(module, name) for name in module.__all__})
    return names


def free_names(tree: ast.AST) -> set[str]:
    """Names the code reads but never binds (scopes ignored: binding a name anywhere counts as defining it)."""
    loaded: set[str] = set()
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return loaded - bound - set(dir(builtins))


def with_placeholders_filled(code: str, world: World) -> str:
    def rebase(match: re.Match[str]) -> str:
        return json.dumps(str(world.tmp_path / "paths" / match["path"].lstrip("/")))

    if '"PROMPT_ID"' in code or "'PROMPT_ID'" in code:
        code = re.sub(r"([\"'])PROMPT_ID\1", json.dumps(world.prompt["prompt_id"]), code)
    code = re.sub(r"([\"'])ps_\.\.\.\1", json.dumps(API_KEY), code)
    if PLACEHOLDER_URL in code:
        code = code.replace(PLACEHOLDER_URL, world.url)
    return re.sub(r"([\"'])(?P<path>/(?:tmp|var)/[^\"'\n]*)\1", rebase, code)


class ExampleFailed(AssertionError):
    pass


def run_example(example: Example, tmp_path: Path) -> dict[str, Any]:
    """Run one example in its own world; returns its namespace. Raises ExampleFailed, saying which example, its code
    and what the context supplied, when it raises."""
    world = World(tmp_path, example.client_kind, example.template_input)
    saved = {name: os.environ.get(name) for name in world.environment()}
    saved_cwd = os.getcwd()
    namespace: dict[str, Any] = {"__name__": "__doc_example__"}
    supplied: list[str] = []
    try:
        # Relative paths an example names (`Store("server.sqlite3")`) land in its tmp dir, never in the checkout.
        os.chdir(tmp_path)
        os.environ.update(world.environment())
        code = with_placeholders_filled(example.code, world)
        if '"greeting"' in code and 'create("greeting"' not in code:
            world.greeting  # noqa: B018 - an example that looks the prompt up by name needs it to exist
        tree = ast.parse(code)
        statics = static_names()
        for name in sorted(free_names(tree)):
            if name in statics:
                namespace[name] = statics[name]
                continue
            with contextlib.suppress(LookupError):
                namespace[name] = world.provide(name)
                supplied.append(name)
        compiled = compile(tree, example.where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        _execute(compiled, namespace, world)
    except BaseException as exc:  # SystemExit too: an example that exits is a failed example
        if isinstance(exc, KeyboardInterrupt):
            raise
        context = f"the context supplied {supplied}" if supplied else "the context supplied nothing"
        raise ExampleFailed(
            f"{example.where}: {type(exc).__name__}: {exc}\n({context})\n{textwrap.indent(example.code, '    ')}"
        ) from exc
    finally:
        _close_what_it_made(namespace)
        world.close()
        os.chdir(saved_cwd)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return namespace


def _execute(compiled: Any, namespace: dict[str, Any], world: World) -> None:
    """Run the code; top-level `await` runs in an event loop, as in a notebook or `python -m asyncio`."""
    result = eval(compiled, namespace)
    if inspect.iscoroutine(result):
        asyncio.run(_finish(result, namespace))
    for name, function in list(namespace.items()):  # an example that defines a test: run it, as pytest would
        if name.startswith("test_") and inspect.isfunction(function):
            function(**{parameter: world.provide(parameter) for parameter in inspect.signature(function).parameters})


async def _finish(coroutine: Any, namespace: dict[str, Any]) -> None:
    try:
        await coroutine
    finally:  # in the loop their connections belong to
        for value in list(namespace.values()):
            if isinstance(value, promptstream.AsyncPromptStreamClient):
                with contextlib.suppress(Exception):
                    await value.aclose()


def _close_what_it_made(namespace: dict[str, Any]) -> None:
    for value in namespace.values():
        with contextlib.suppress(Exception):
            if isinstance(value, promptstream.AsyncPromptStreamClient):
                asyncio.run(value.aclose())
            elif isinstance(value, promptstream.PromptStreamClient):
                value.close(timeout=2)
            elif isinstance(value, promptstream.server.ServerThread):
                value.stop()
            elif isinstance(value, promptstream.server.Store):
                value.close()
