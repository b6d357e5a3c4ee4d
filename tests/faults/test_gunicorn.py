"""A real gunicorn with --preload and 4 workers serving an app that tracks per request, driven by a load loop on
loopback, then stopped gracefully: every tracked event is stored."""

from __future__ import annotations

import shutil
import signal
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..helpers import REPO_ROOT, client_env, make_run, start_server_process, total_duplicates

pytestmark = pytest.mark.skipif(
    shutil.which("gunicorn", path=str(Path(sys.executable).parent)) is None,
    reason="gunicorn is a test dependency (the dev extra)",
)


def test_gunicorn_preload_with_four_workers_stores_every_tracked_event(
    server: Any, spool_dir: Path, children: list[Any]
) -> None:
    run_id, experiment_id = make_run(server)
    master, base = start_server_process(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "--preload",
            "--workers",
            "4",
            "--bind",
            "127.0.0.1:{port}",
            "--graceful-timeout",
            "20",
            "gunicorn_app:app",
        ],
        {**client_env(server.url, spool_dir, RUN=run_id, EXP=experiment_id), "PATH": "/usr/bin:/bin"},
        ready_path="/",
        cwd=REPO_ROOT / "docs" / "examples",  # the recipe itself (docs/recipes.md)
    )
    children.append(master)
    url = f"{base}/"
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
    keys = [row["idempotency_key"] for row in server.store.batch_log()]
    assert len(keys) == len(set(keys))  # and no batch went out twice from two workers (issue 19's ~2 %)
    print(f"\ngunicorn --preload, {len(workers)} workers: {len(tracked)} tracked by the load loop, all stored")
