"""CI's verdict from tox's result file (`tox --result-json`) and tox's exit status: one line, and the exit code.

CI passes only when tox exited 0, the result file names at least one environment, and every environment ran (none
skipped) and succeeded with every command exiting 0. The command check is ours, not tox's: a command tox was told to
ignore (a leading `-`) or pytest's exit code 5 ("no tests collected", e.g. a marker that selects nothing) still
fails CI.

Usage: python .ci/summary.py RESULT_JSON TOX_EXIT_STATUS
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

PYTEST_EXIT_CODES = {
    1: "tests failed",
    2: "pytest was interrupted",
    3: "pytest internal error",
    4: "pytest usage error",
    5: "pytest collected no tests",
}


def is_pytest(command: list[str]) -> bool:
    return any(Path(part).name.startswith("pytest") for part in command[:1]) or "pytest" in command[1:3]


def environment_problems(name: str, env: dict[str, Any]) -> list[str]:
    result = env.get("result") or {}
    if result.get("skipped"):
        return [f"{name}: skipped (interpreter missing?)"]
    problems = []
    for phase in ("setup", "test"):
        for step in env.get(phase) or []:
            code = step.get("retcode")
            if code:
                command = step.get("command") or []
                why = PYTEST_EXIT_CODES.get(code, "") if is_pytest(command) else ""
                shown = " ".join(Path(command[0]).name if i == 0 else part for i, part in enumerate(command[:4]))
                problems.append(f"{name}: `{shown}` exited {code}" + (f" ({why})" if why else ""))
    if not result.get("success", False) and not problems:
        problems.append(f"{name}: failed (exit {result.get('exit_code')})")
    return problems


def verdict(journal: dict[str, Any] | None, tox_status: int) -> tuple[bool, str]:
    """(passed, the summary line)."""
    envs: dict[str, Any] = (journal or {}).get("testenvs") or {}
    # tox's packaging environment (".pkg") shows up beside the real ones and fails only through them; the
    # environments of env_list that `-e` did not select show up empty
    envs = {name: env for name, env in envs.items() if not name.startswith(".") and env}
    problems = [problem for name, env in envs.items() for problem in environment_problems(name, env)]
    if journal is None:
        problems.append("tox wrote no result file")
    elif not envs:
        problems.append("tox ran no environment")
    if tox_status != 0 and not problems:
        problems.append(f"tox exited {tox_status}")
    if problems:
        return False, f"CI: FAIL ({'; '.join(problems)})"
    seconds = sum(float((env.get("result") or {}).get("duration") or 0) for env in envs.values())
    noun = "environment" if len(envs) == 1 else "environments"
    return True, f"CI: PASS ({len(envs)} {noun} ok in {seconds:.0f} s: {', '.join(envs)})"


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    path, status = Path(argv[1]), int(argv[2])
    try:
        journal = json.loads(path.read_text())
    except (OSError, ValueError):
        journal = None
    passed, line = verdict(journal, status)
    print(line)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
