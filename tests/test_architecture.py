"""The layering the README promises: the SDK core never imports the reference server (or its dependencies), and
the server never imports the SDK's internals: they meet only on the wire. And the layout stays readable: no module
over about 450 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from .helpers import REPO_ROOT, run_child

PACKAGE = REPO_ROOT / "promptstream"
MAX_MODULE_LINES = 450
# Modules being split right now; the lead empties this list once they are.
TOO_LONG_FOR_NOW: set[str] = set()
SERVER_SIDE = ("promptstream.server", "starlette", "uvicorn", "psycopg")


def modules() -> list[Path]:
    return sorted([*PACKAGE.rglob("*.py"), *(REPO_ROOT / "promptstream_sdk").rglob("*.py")])


def sdk_core_modules() -> list[Path]:
    """The SDK: everything but the server and the command line (which starts the server)."""
    return [p for p in modules() if not {"server", "cli"} & set(p.relative_to(REPO_ROOT).parts[1:-1])]


def server_modules() -> list[Path]:
    return sorted((PACKAGE / "server").rglob("*.py"))


def imported_modules(path: Path, root: Path = REPO_ROOT) -> set[str]:
    """Every module ``path`` imports, in any form: `import a.b`, `from a import b` (as a.b too), relative imports
    resolved against the file's package, imports under `if TYPE_CHECKING:` or inside functions, and
    `importlib.import_module("a.b")` / `__import__("a.b")` with a literal name."""
    package = list(path.relative_to(root).parts[:-1])  # a module's package, or an __init__'s own
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package[: len(package) - (node.level - 1)]
                base = ".".join([*parts, base] if base else parts)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                or (isinstance(node.func, ast.Name) and node.func.id in ("__import__", "import_module"))
            )
        ):
            names.add(node.args[0].value)
    return names


def is_sdk_internal(module: str) -> bool:
    return (module == "promptstream" or module.startswith(("promptstream.", "promptstream_sdk"))) and not (
        module == "promptstream.server" or module.startswith("promptstream.server.")
    )


def test_importing_the_sdk_loads_neither_the_server_nor_its_dependencies() -> None:
    result = run_child(
        "import sys, promptstream, promptstream_sdk, promptstream.testing\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('starlette', 'uvicorn')"
        " or m.startswith('promptstream.server')))",
        {"PYTHONPATH": str(REPO_ROOT)},
    )
    assert result.stdout.strip() == "[]", result.stderr


def test_importing_the_sdk_stays_light() -> None:
    """What `import promptstream` must not pay for (docs/benchmarks.md measures the import against httpx's):
    asyncio (the async client imports it inside its coroutines), backoff (which imports asyncio), sqlite3 (the agent
    imports the SQLite spool when it opens it), platformdirs (needed only to find the default spool directory) and
    gzip (the sender writes gzip with zlib, which httpx has imported already)."""
    heavy = ("asyncio", "backoff", "sqlite3", "platformdirs", "gzip")
    result = run_child(
        f"import sys, promptstream\nprint(sorted(m for m in {heavy!r} if m in sys.modules))",
        {"PYTHONPATH": str(REPO_ROOT)},
    )
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


@pytest.mark.parametrize("path", sdk_core_modules(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_the_sdk_never_imports_the_server(path: Path) -> None:
    offending = {m for m in imported_modules(path) if m.startswith(SERVER_SIDE)}
    assert not offending, f"{path.relative_to(REPO_ROOT)} imports {offending}"


def is_otel_integration(path: Path) -> bool:
    return path.relative_to(REPO_ROOT).parts[:2] == ("promptstream", "otel")


@pytest.mark.parametrize(
    "path", [p for p in sdk_core_modules() if not is_otel_integration(p)], ids=lambda p: str(p.relative_to(REPO_ROOT))
)
def test_only_the_otel_extra_imports_opentelemetry(path: Path) -> None:
    """The core reaches OpenTelemetry only through the instrumentation= seam (promptstream/_instrumentation.py)."""
    offending = {m for m in imported_modules(path) if m == "opentelemetry" or m.startswith("opentelemetry.")}
    assert not offending, f"{path.relative_to(REPO_ROOT)} imports {offending}"


@pytest.mark.parametrize(
    "path",
    [*server_modules(), *(PACKAGE / "otel").rglob("*.py")],
    ids=lambda p: str(p.relative_to(REPO_ROOT)),
)
def test_opentelemetry_is_used_through_its_api_only(path: Path) -> None:
    """The application (or the operator) owns the OpenTelemetry SDK and its exporters: we never import them."""
    offending = {m for m in imported_modules(path) if m.startswith(("opentelemetry.sdk", "opentelemetry.exporter"))}
    assert not offending, f"{path.relative_to(REPO_ROOT)} imports {offending}"


def test_importing_the_sdk_never_loads_opentelemetry() -> None:
    result = run_child(
        "import sys, promptstream, promptstream.testing\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'opentelemetry'))",
        {"PYTHONPATH": str(REPO_ROOT)},
    )
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


@pytest.mark.parametrize("path", server_modules(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_the_server_never_imports_sdk_internals(path: Path) -> None:
    offending = {m for m in imported_modules(path) if is_sdk_internal(m)}
    assert not offending, f"{path.relative_to(REPO_ROOT)} imports {offending}"


def test_the_layers_are_all_checked() -> None:
    core = {str(p.relative_to(REPO_ROOT)) for p in sdk_core_modules()}
    assert {"promptstream/__init__.py", "promptstream/_client.py", "promptstream_sdk/__init__.py"} <= core
    assert any(name.startswith("promptstream/_agent/") for name in core)
    assert any(name.startswith("promptstream/testing/") for name in core)
    assert not any(name.startswith(("promptstream/server/", "promptstream/cli/")) for name in core)
    assert len(server_modules()) >= 3


import_forms = st.sampled_from(
    [
        ("import {target}", "{target}"),
        ("import {target} as alias", "{target}"),
        ("from {target} import thing", "{target}"),
        ("if TYPE_CHECKING:\n    from {target} import thing", "{target}"),
        ("def later():\n    import {target}", "{target}"),
        ("importlib.import_module('{target}')", "{target}"),
        ("__import__('{target}')", "{target}"),
    ]
)


@given(
    form=import_forms,
    target=st.sampled_from(["promptstream.server", "promptstream.server._store", "promptstream._client", "uvicorn"]),
    depth=st.integers(min_value=0, max_value=2),
)
def test_the_import_scanner_sees_every_form_of_import(
    form: tuple[str, str], target: str, depth: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("scan")
    package = root.joinpath("promptstream", *["sub"] * depth)
    package.mkdir(parents=True, exist_ok=True)
    module = package / "mod.py"
    template, expected = form
    module.write_text(template.format(target=target) + "\n")
    assert expected.format(target=target) in imported_modules(module, root)


@pytest.mark.parametrize(
    ("where", "source", "expected"),
    [
        ("promptstream/_agent/_x.py", "from .. import server", "promptstream.server"),
        ("promptstream/_agent/_x.py", "from ..server import _store", "promptstream.server._store"),
        ("promptstream/__init__.py", "from .server import Store", "promptstream.server"),
        ("promptstream/server/_x.py", "from .. import _client", "promptstream._client"),
        ("promptstream/server/__init__.py", "from .._errors import X", "promptstream._errors"),
        ("promptstream/server/_x.py", "from ._store import Store", "promptstream.server._store"),
    ],
)
def test_relative_imports_resolve_against_the_files_package(
    where: str, source: str, expected: str, tmp_path: Path
) -> None:
    module = tmp_path / where
    module.parent.mkdir(parents=True, exist_ok=True)
    module.write_text(source + "\n")
    assert expected in imported_modules(module, tmp_path)


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_no_module_is_over_450_lines(path: Path) -> None:
    name = str(path.relative_to(REPO_ROOT))
    lines = len(path.read_text().splitlines())
    if name in TOO_LONG_FOR_NOW:
        assert lines > MAX_MODULE_LINES, f"{name} has {lines} lines now: take it off TOO_LONG_FOR_NOW"
    else:
        assert lines <= MAX_MODULE_LINES, f"{name} has {lines} lines (at most {MAX_MODULE_LINES}): split it"


def test_the_exceptions_to_the_line_limit_exist() -> None:
    assert all((REPO_ROOT / name).exists() for name in TOO_LONG_FOR_NOW), TOO_LONG_FOR_NOW
