"""The layering the README promises: the SDK core never imports the reference server (or its dependencies), and
the server never imports the SDK's internals: they meet only on the wire."""

from __future__ import annotations

import ast
from pathlib import Path

from .helpers import REPO_ROOT, run_child

PACKAGE = REPO_ROOT / "promptstream"


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # resolve relative imports against the file's package
                parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)[: -node.level]
                base = ".".join([*parts, base] if base else parts)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def test_importing_the_sdk_loads_neither_the_server_nor_its_dependencies() -> None:
    result = run_child(
        "import sys, promptstream, promptstream_sdk\n"
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


def test_core_modules_never_import_the_server() -> None:
    core = [p for p in PACKAGE.rglob("*.py") if not {"server", "cli"} & set(p.relative_to(PACKAGE).parts)]
    assert core
    for path in core:
        offending = {m for m in imported_modules(path) if m.startswith(("promptstream.server", "starlette", "uvicorn"))}
        assert not offending, f"{path} imports {offending}"


def test_the_server_never_imports_sdk_internals() -> None:
    for path in (PACKAGE / "server").rglob("*.py"):
        offending = {
            m
            for m in imported_modules(path)
            if m.startswith("promptstream") and not m.startswith("promptstream.server")
        }
        assert not offending, f"{path} imports {offending}"
