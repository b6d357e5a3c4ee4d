"""The test command works for a user as their machine comes, and CI is strict: `tox` on a machine with any one
Python 3.10-3.13 runs what it can and skips the rest; `.ci/run` requires all four and fails on anything short of
every environment passing, pytest's exit code 5 ("no tests collected") included."""

from __future__ import annotations

import configparser
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from .helpers import REPO_ROOT

SUMMARY = REPO_ROOT / ".ci" / "summary.py"
SUPPORTED = ("3.10", "3.11", "3.12", "3.13")


def load_summary() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ci_summary", SUMMARY)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


summary = load_summary()


def tox_ini() -> configparser.ConfigParser:
    config = configparser.ConfigParser(interpolation=None)
    config.read(REPO_ROOT / "tox.ini")
    return config


def environments_that_run(version: str) -> set[str]:
    """What `tox` runs on a machine whose only Python is ``version``, reading tox.ini as tox does: a `pyXY` env
    needs that interpreter, an env with `base_python` needs the first of its list that exists, any other env uses
    the interpreter tox runs on."""
    config = tox_ini()
    ran = set()
    for name in re.split(r"[\s,]+", config["tox"]["env_list"].strip()):
        section = config[f"testenv:{name}"] if config.has_section(f"testenv:{name}") else {}
        match = re.fullmatch(r"py3(\d+)", name)
        specs = re.split(r"[\s,]+", section.get("base_python", "").strip()) if "base_python" in section else []
        if match:
            ran.update([name] if version == f"3.{match[1]}" else [])
        elif not specs or f"python{version}" in specs:
            ran.add(name)
    return ran


@pytest.mark.parametrize("version", SUPPORTED)
def test_tox_on_a_machine_with_one_python_skips_only_what_it_cannot_run(version: str) -> None:
    assert tox_ini()["tox"]["skip_missing_interpreters"] == "true"
    ran = environments_that_run(version)
    everywhere = {f"py3{version.split('.')[1]}", "slow", "lint", "type", "verifytypes"}
    expected = everywhere | ({"docs"} if version != "3.10" else set())
    assert ran == expected


def test_ci_requires_every_interpreter_and_refuses_skips() -> None:
    script = (REPO_ROOT / ".ci" / "run").read_text()
    assert "--skip-missing-interpreters false" in script
    assert re.search(r"REQUIRED_PYTHONS=\(3\.10 3\.11 3\.12 3\.13\)", script)
    assert ".ci/summary.py" in script


def tox_env(commands: list[tuple[list[str], int]], *, skipped: bool = False) -> dict[str, Any]:
    """One environment of tox's result file, in the shape tox 4 writes it."""
    if skipped:
        return {"result": {"success": True, "exit_code": 0, "duration": 0.01, "skipped": True}}
    failing = next((code for _, code in commands if code), 0)
    return {
        "python": {"version_info": [3, 11, 7, "final", 0]},
        "result": {"success": failing == 0, "exit_code": failing, "duration": 1.5, "skipped": False},
        "setup": [{"command": ["/x/.tox/e/bin/python", "-m", "pip", "freeze"], "retcode": 0, "run_id": "freeze"}],
        "test": [
            {"command": command, "retcode": code, "run_id": f"commands[{i}]"}
            for i, (command, code) in enumerate(commands)
        ],
    }


env_names = st.from_regex(r"[a-z][a-z0-9]{1,8}", fullmatch=True)
exit_codes = st.integers(min_value=0, max_value=255)
commands = st.lists(
    st.tuples(
        st.sampled_from([["/e/bin/pytest", "-m", "slow"], ["/e/bin/python", "-m", "pytest"], ["ruff", "check"]]),
        exit_codes,
    ),
    min_size=1,
    max_size=3,
)


@given(st.dictionaries(env_names, st.tuples(commands, st.booleans()), min_size=1, max_size=8), exit_codes)
def test_ci_passes_only_when_every_environment_ran_and_every_command_exited_zero(
    envs: dict[str, tuple[list[tuple[list[str], int]], bool]], tox_status: int
) -> None:
    journal = {"testenvs": {name: tox_env(cmds, skipped=skipped) for name, (cmds, skipped) in envs.items()}}
    passed, line = summary.verdict(journal, tox_status)
    clean = tox_status == 0 and all(
        not skipped and all(code == 0 for _, code in cmds) for cmds, skipped in envs.values()
    )
    assert passed is clean
    assert line.startswith("CI: PASS" if clean else "CI: FAIL")
    for name, (cmds, skipped) in envs.items():
        if skipped:
            assert f"{name}: skipped" in line
        elif any(code for _, code in cmds):
            assert f"{name}: `" in line


@pytest.mark.parametrize(
    "command", [["/ci/.tox/slow/bin/pytest", "-m", "slow"], ["/ci/.tox/py311/bin/python", "-m", "pytest"]]
)
def test_pytest_collecting_no_tests_fails_ci_even_when_tox_ignored_the_command(
    command: list[str], tmp_path: Path
) -> None:
    """A `-` before a command makes tox ignore its exit code; CI still reads the command's own code."""
    env = tox_env([(command, 5)])
    env["result"].update(success=True, exit_code=0)
    result_file = tmp_path / "tox.json"
    result_file.write_text(json.dumps({"testenvs": {"slow": env, "lint": tox_env([(["ruff", "check"], 0)])}}))
    completed = subprocess.run(
        [sys.executable, str(SUMMARY), str(result_file), "0"], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 1
    assert completed.stdout.strip().splitlines()[-1].startswith("CI: FAIL (slow: ")
    assert "exited 5 (pytest collected no tests)" in completed.stdout


@pytest.mark.parametrize("content", [None, "", "{not json", json.dumps({"testenvs": {}})])
def test_ci_fails_when_tox_left_no_results(content: str | None, tmp_path: Path) -> None:
    result_file = tmp_path / "tox.json"
    if content is not None:
        result_file.write_text(content)
    completed = subprocess.run(
        [sys.executable, str(SUMMARY), str(result_file), "0"], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 1
    assert completed.stdout.startswith("CI: FAIL (")
