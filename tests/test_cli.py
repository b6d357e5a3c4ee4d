"""The `promptstream` command: `serve` as a real process, `demo` end to end, one-line errors."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from promptstream import PromptStreamClient
from promptstream.cli import main

from .helpers import REPO_ROOT, wait_until


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "promptstream", "serve", "--port", str(port), *args],
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "XDG_DATA_HOME": str(tmp_path / "data"),
            "PYTHONPATH": str(REPO_ROOT),
            **(env or {}),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/v1/prompts", timeout=1).status_code == 401
        except httpx.TransportError:
            return False

    assert wait_until(up, timeout=20), "server did not come up"
    return process, url


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


def test_demo_runs_end_to_end(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--users", "5"]) == 0
    out = capsys.readouterr().out
    assert "output:  Hello user 0, welcome to PromptStream!" in out
    assert "server stored 12 events for 5 runs" in out  # 5 clicks, 2 conversions, 5 ratings


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
