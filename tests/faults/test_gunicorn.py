"""A real gunicorn with --preload and 4 workers serving an app that tracks per request, driven by a load loop on
loopback, then stopped gracefully: every tracked event is stored."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..helpers import REPO_ROOT, client_env, make_run, total_duplicates, wait_until

pytestmark = pytest.mark.skipif(
    shutil.which("gunicorn", path=str(Path(sys.executable).parent)) is None,
    reason="gunicorn is a test dependency (the dev extra)",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_gunicorn_preload_with_four_workers_stores_every_tracked_event(
    server: Any, spool_dir: Path, children: list[Any]
) -> None:
    run_id, experiment_id = make_run(server)
    port = free_port()
    master = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "--preload",
            "--workers",
            "4",
            "--bind",
            f"127.0.0.1:{port}",
            "--graceful-timeout",
            "20",
            "gunicorn_app:app",
        ],
        cwd=REPO_ROOT / "docs" / "examples",  # the recipe itself (docs/recipes.md)
        env={**client_env(server.url, spool_dir, RUN=run_id, EXP=experiment_id), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    children.append(master)
    url = f"http://127.0.0.1:{port}/"

    def up() -> bool:
        try:
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    assert wait_until(up, timeout=30), "gunicorn did not come up"
    tracked: list[str] = []
    workers: set[str] = set()
    with httpx.Client(timeout=10) as http:
        for i in range(800):
            response = http.get(f"{url}page/{i}")
            assert response.status_code == 200
            tracked.append(response.text)
            workers.add(response.headers["x-worker"])
    assert len(workers) > 1  # the load really was spread over forked workers
    master.send_signal(signal.SIGTERM)  # graceful stop: workers finish, their exit hooks flush
    output, _ = master.communicate(timeout=60)
    assert master.returncode == 0, output
    assert "Traceback" not in output, output
    stored = server.stored_event_ids()
    warm_up = len(stored) - len(tracked)  # the readiness probes tracked too
    assert set(tracked) <= set(stored) and 0 < warm_up < 100
    assert total_duplicates(server) == 0
    print(f"\ngunicorn --preload, {len(workers)} workers: {len(tracked)} tracked by the load loop, all stored")
