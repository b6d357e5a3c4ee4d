"""The `promptstream` command: `serve` as a real process, `demo` end to end, one-line errors."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptstream import PromptStreamClient
from promptstream.cli import main

from .helpers import API_KEY, REPO_ROOT, client_env, free_port, make_run, run_child, start_server_process


def serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "promptstream", "serve", "--port", "{port}", *args]
    home = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data")}
    return start_server_process(
        command, {**home, "PYTHONPATH": str(REPO_ROOT), **(env or {})}, ready_path="/v1/prompts"
    )


def stop(process: subprocess.Popen[str]) -> str:
    process.terminate()
    out, _ = process.communicate(timeout=20)
    return out


def test_serve_runs_a_real_server_that_logs_each_request_but_never_the_key(tmp_path: Path, spool_dir: Path) -> None:
    key = "ps_cli_secret_key"
    process, url = serve(tmp_path, "--api-key", key, "--db", str(tmp_path / "db.sqlite3"))
    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as http:
            prompt = http.post("/v1/prompts", json={"name": "p", "template": "Hi {{who}}"}).json()
        with PromptStreamClient(key, base_url=url, spool_dir=spool_dir) as client:
            run = client.run_prompt(prompt["prompt_id"], {"who": "there"})
            client.track_click(run.run_id, run.experiment_id, "cta")
            assert client.flush(10)
        assert run.output == "Hi there"
    finally:
        out = stop(process)
    assert f"POST /v1/prompts/{prompt['prompt_id']}/runs 200" in out
    assert "POST /v1/events/batch 200" in out
    assert key not in out


def test_serve_without_keys_generates_and_prints_a_dev_key_once(tmp_path: Path) -> None:
    process, url = serve(tmp_path, "--db", ":memory:")
    first = stop(process)
    key_file = next((tmp_path / "data").rglob("dev-api-key"))
    key = key_file.read_text().strip()
    assert key in first and "Generated a development API key" in first
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    process, url = serve(tmp_path, "--db", ":memory:")
    try:
        assert httpx.get(f"{url}/v1/prompts", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    finally:
        second = stop(process)
    assert "Generated" not in second


def test_serve_takes_keys_from_the_environment(tmp_path: Path) -> None:
    process, url = serve(tmp_path, "--db", ":memory:", env={"PROMPTSTREAM_SERVER_API_KEYS": "k1, k2"})
    try:
        for key in ("k1", "k2"):
            assert httpx.get(f"{url}/v1/prompts", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    finally:
        stop(process)


def test_demo_runs_the_experiment_and_prints_results_that_match_the_server(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    plot = tmp_path / "conversion.png"
    assert main(["demo", "--users", "600", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    table = out[out.index("variant") :]
    assert "v1 (control)" in table and "v2" in table and "conversion / user" in table
    assert re.search(r"^Decision: (ship|keep running) — ", out, re.MULTILINE)
    delivery = next(line for line in out.splitlines() if line.startswith("SDK delivery"))
    tracked, stored = (int(n.replace(",", "")) for n in re.findall(r"([\d,]+) (?:events tracked|stored)", delivery))
    assert tracked == stored and "0 dropped" in delivery
    assert plot.stat().st_size > 10_000 and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_is_reproducible_with_a_seed(capsys: pytest.CaptureFixture[str]) -> None:
    tables = []
    for _ in range(2):
        assert main(["demo", "--users", "200", "--seed", "3"]) == 0
        out = capsys.readouterr().out
        tables.append(out[out.index("variant") : out.index("SDK delivery")])
    assert tables[0] == tables[1]


def admin(server: Any, *args: str) -> list[str]:
    return ["--base-url", server.url, "--api-key", API_KEY, *args]


def test_prompts_and_experiments_from_the_shell(server: Any, capsys: pytest.CaptureFixture[str]) -> None:
    def run(*argv: str) -> str:
        assert main([*argv[:2], *admin(server, *argv[2:])]) == 0
        return capsys.readouterr().out

    prompt_id = run("prompts", "create", "greeting", "Hello {{name}}").split()[0]
    assert f"{prompt_id}  version 2  inputs: name" in run("prompts", "add-version", prompt_id, "Hi {{name}}!")
    shown = run("prompts", "show", prompt_id)
    assert "v1  (name)  Hello {{name}}" in shown and "v2  (name)  Hi {{name}}!" in shown
    assert prompt_id in run("prompts", "list")
    created = run("experiments", "create", prompt_id, "--variant", "1:1", "--variant", "2:3", "--name", "copy")
    experiment_id = created.split()[0]
    assert "live" in created and "v1:1, v2:3" in created
    assert experiment_id in run("experiments", "list", "--prompt", prompt_id)
    results = run("experiments", "results", experiment_id)
    assert "v1 (control)" in results and "too few runs" in results
    raw = json.loads(run("experiments", "results", experiment_id, "--json"))
    assert raw["experiment_id"] == experiment_id and raw["control"] == "v1"


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("server down", "cannot reach the server"),
        ("bad key", "the server refused the API key (401)"),
        ("unknown experiment", "404 experiment_not_found"),
        ("no key", "no API key: pass --api-key or set PROMPTSTREAM_API_KEY"),
    ],
)
def test_each_failure_is_one_clear_line_and_exit_1(
    server: Any, case: str, expected: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROMPTSTREAM_API_KEY", raising=False)
    argv = {
        "server down": ["experiments", "list", "--base-url", f"http://127.0.0.1:{free_port()}", "--api-key", "k"],
        "bad key": ["prompts", "list", "--base-url", server.url, "--api-key", "wrong"],
        "unknown experiment": ["experiments", "results", "nope", *admin(server)[:4]],
        "no key": ["prompts", "list", "--base-url", server.url],
    }[case]
    assert main(argv) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("promptstream: error:") and expected in lines[0], lines[0]
    assert "Traceback" not in captured.err


secrets = st.text(alphabet="abcdefXYZ0123456789", min_size=4, max_size=16)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    user=secrets.map("SeCrEtUsEr".__add__),
    password=secrets.map("SeCrEtPw".__add__),
    key=secrets.map("ps_SeCrEtKey".__add__),
    host=st.sampled_from(["127.0.0.1", "localhost", "[::1]"]),
    path=st.sampled_from(["", "/promptstream", "/api/v1", "/a%20b"]),
    command=st.sampled_from([["prompts", "list"], ["experiments", "list"], ["experiments", "results", "e1"]]),
)
def test_server_down_names_the_url_it_tried_and_never_a_secret(
    user: str,
    password: str,
    key: str,
    host: str,
    path: str,
    command: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = free_port()  # nothing listens there
    monkeypatch.setenv("PROMPTSTREAM_API_KEY", key)
    for base_url in (f"http://{user}:{password}@{host}:{port}{path}", f"http://{host}:{port}{path}"):
        assert main([*command, "--base-url", base_url]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("promptstream: error: cannot reach the server at "), err
        assert f" at http://{host}:{port}{path}: " in err, err
        assert "SeCrEt" not in err, err


def test_spool_status_drain_and_purge(
    server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = tmp_path / "spool"
    monkeypatch.setenv("PROMPTSTREAM_SPOOL_DIR", str(spool))
    monkeypatch.setenv("PROMPTSTREAM_API_KEY", API_KEY)
    monkeypatch.setenv("PROMPTSTREAM_BASE_URL", server.url)
    run_id, experiment_id = make_run(server)
    assert main(["spool", "status"]) == 0
    assert "pending:        0 (no spool file yet)" in capsys.readouterr().out
    server.thread.stop()  # an offline app leaves a backlog
    result = run_child(
        f"""
        import os
        from promptstream import PromptStreamClient
        client = PromptStreamClient(shutdown_timeout=0.2)
        for _ in range(300):
            client.track_click({run_id!r}, {experiment_id!r}, "offline")
        client.close(timeout=0.2)
        """,
        client_env(server.url, spool),
    )
    assert result.returncode == 0, result.stderr
    assert main(["spool", "status"]) == 0
    status = capsys.readouterr().out
    assert "pending:        300 events" in status and "dead-lettered:  0" in status and "s ago" in status
    assert main(["spool", "drain", "--timeout", "3"]) == 1  # still down: says so in one line
    assert f"300 events still pending for {server.url}" in capsys.readouterr().err
    server.thread.start()
    assert main(["spool", "drain"]) == 0
    assert "drained: 300 delivered" in capsys.readouterr().out
    assert server.store.count("events") == 300
    assert main(["spool", "purge", "--yes"]) == 0
    assert "deleted" in capsys.readouterr().out
    assert not list(spool.glob("spool-*.sqlite3"))


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["no-such-command"])
    assert info.value.code == 2


def test_a_failure_is_one_line_and_exit_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        assert main(["serve", "--port", str(port), "--db", ":memory:", "--api-key", "k"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("promptstream: error:")
