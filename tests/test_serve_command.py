"""`promptstream serve` refuses API keys that would open or lock the server, binds before it announces itself, and
reports the port it really got (port 0). Real processes, real sockets."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .helpers import REPO_ROOT, start_server_process, wait_until

unusable_keys = st.one_of(
    st.just(""),
    st.text(alphabet=" \t\r\n\x0b\x0c", min_size=1, max_size=3),
    st.tuples(st.text(alphabet="abc", max_size=4), st.characters(max_codepoint=0x20) | st.just("\x7f")).map("".join),
    st.tuples(st.just("ps_"), st.characters(min_codepoint=0x80, exclude_categories=("Cs",))).map("".join),
)


def serve_command(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    home = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data")}
    return subprocess.run(
        [sys.executable, "-m", "promptstream", "serve", "--port", "0", "--db", ":memory:", *args],
        env={**home, "PYTHONPATH": str(REPO_ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=unusable_keys, from_env=st.booleans())
def test_serve_refuses_an_unusable_api_key_with_exit_2_and_one_line(tmp_path: Path, key: str, from_env: bool) -> None:
    if from_env:
        if key.strip() != key or not key.strip():
            # blank entries are skipped and entries are stripped ("abb " is the key "abb"); whitespace inside is not
            key = f"ok,a {key}b"
        result = serve_command(tmp_path, env={"PROMPTSTREAM_SERVER_API_KEYS": key})
    else:
        result = serve_command(tmp_path, "--api-key", "good_key", "--api-key", key)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "API key #" in lines[0], result.stderr
    assert result.stdout == ""  # no banner: it never started
    if key.strip():
        assert key.strip() not in lines[0].split("API key #")[1][2:]  # the message never echoes the key


def test_serve_on_a_busy_port_prints_no_banner_only_the_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = serve_command(tmp_path, "--port", str(port), "--api-key", "k")
    assert result.returncode == 1
    assert "server on" not in result.stdout and "Generated" not in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"cannot listen on 127.0.0.1:{port}" in lines[0]


def test_serve_on_port_0_announces_the_port_it_really_listens_on(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "promptstream", "serve", "--port", "{port}", "--db", ":memory:"]
    home = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data")}
    env = {**home, "PYTHONPATH": str(REPO_ROOT), "PROMPTSTREAM_SERVER_API_KEYS": "k1"}
    process, url = start_server_process(command, env, ready_path="/v1/prompts")
    try:
        assert url.rsplit(":", 1)[1] != "0"
        assert httpx.get(f"{url}/v1/prompts", headers={"Authorization": "Bearer k1"}).status_code == 200
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=20)
    assert f"PromptStream reference server on {url} " in output


def test_serve_help_explains_host_and_port(capsys: pytest.CaptureFixture[str]) -> None:
    from promptstream.cli import main

    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "address to listen on" in text and "0 picks a free one" in text


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(workers=st.integers(2, 64), db=st.sampled_from([":memory:", "server.sqlite3", "sqlite:///server.sqlite3"]))
def test_serve_refuses_more_than_one_worker_on_sqlite_with_exit_2_and_one_line(
    tmp_path: Path, workers: int, db: str
) -> None:
    result = serve_command(tmp_path, "--db", db, "--workers", str(workers), "--api-key", "k")
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"--workers {workers} needs PostgreSQL" in lines[0]
    assert result.stdout == ""
    assert not (tmp_path / "server.sqlite3").exists()  # refused before anything was opened


@pytest.mark.parametrize("workers", [0, -1])
def test_serve_refuses_a_worker_count_below_one(tmp_path: Path, workers: int) -> None:
    result = serve_command(tmp_path, "--workers", str(workers), "--api-key", "k")
    assert result.returncode == 2 and "--workers must be at least 1" in result.stderr


def _worker_pids(parent: int) -> set[int]:
    children = Path(f"/proc/{parent}/task/{parent}/children")
    return {int(pid) for pid in children.read_text().split()} if children.exists() else set()


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads worker pids from /proc (Linux)")
def test_serve_workers_share_the_port_a_dead_worker_is_replaced_and_all_stop_with_the_parent(
    tmp_path: Path, pg_url: str
) -> None:
    command = [sys.executable, "-m", "promptstream", "serve", "--port", "{port}", "--db", pg_url, "--workers", "3"]
    home = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data")}
    env = {**home, "PYTHONPATH": str(REPO_ROOT), "PROMPTSTREAM_SERVER_API_KEYS": "k1"}
    process, url = start_server_process(command, env, ready_path="/v1/prompts")
    try:
        assert wait_until(lambda: len(_worker_pids(process.pid)) == 3, timeout=30)
        first = _worker_pids(process.pid)
        victim = sorted(first)[0]
        os.kill(victim, signal.SIGKILL)
        assert wait_until(lambda: victim not in _worker_pids(process.pid) and len(_worker_pids(process.pid)) == 3, 30)
        for _ in range(10):  # the port keeps answering, whichever worker takes the connection
            assert httpx.get(f"{url}/v1/prompts", headers={"Authorization": "Bearer k1"}).status_code == 200
        workers = _worker_pids(process.pid)
        process.kill()  # the parent dies without stopping them: each worker notices and stops itself
        process.communicate(timeout=20)
        assert wait_until(lambda: not any(_alive(pid) for pid in workers), timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=20)


@pytest.mark.parametrize("rate", ["0", "-1", "nan", "inf"])
def test_serve_refuses_a_rate_limit_that_is_not_a_positive_number(tmp_path: Path, rate: str) -> None:
    result = serve_command(tmp_path, "--rate-limit", rate, "--api-key", "k")
    assert result.returncode == 2 and "--rate-limit must be a positive number" in result.stderr
    assert result.stdout == ""
