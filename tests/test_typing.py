"""What a user's type checker sees (issue 14 §5): both import names are typed packages, so ``mypy --strict`` on a
user's script knows the client's types (a misuse is an error, not an ``Any`` that lets everything through)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = """
    from {package} import PromptStreamClient, RunResponse

    client = PromptStreamClient(api_key="ps_key", timeout=3.0, max_retries=1)
    run: RunResponse = client.run_prompt("p", {{"text": "hi"}}, timeout=2.0, extra_headers={{"X-A": "b"}})
    view: PromptStreamClient = client.with_options(max_retries=0)
    request_id: str | None = run.request_id
    wrong: int = client.run_prompt("p", {{}})  # the line mypy must flag
"""


def test_mypy_strict_sees_the_types_of_a_users_script(tmp_path: Path) -> None:
    scripts = []
    for package in ("promptstream", "promptstream_sdk"):
        script = tmp_path / f"user_of_{package}.py"
        script.write_text(textwrap.dedent(SCRIPT.format(package=package)))
        scripts.append(str(script))
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--follow-imports=silent", *scripts],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    errors = sorted(line for line in result.stdout.splitlines() if ": error:" in line)
    assert len(errors) == 2, result.stdout  # exactly the deliberate misuse, once per import name
    for package, error in zip(("promptstream", "promptstream_sdk"), errors, strict=True):
        assert f"user_of_{package}.py:8: error: Incompatible types in assignment" in error, result.stdout
