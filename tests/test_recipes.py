"""Every example in docs/examples/ (the recipes in docs/recipes.md) runs here against the reference server.
gunicorn_app.py is run by tests/faults/test_gunicorn.py with four workers."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from promptstream import PromptStreamClient

from .helpers import REPO_ROOT, client_env, fast, make_run, run_child

EXAMPLES = REPO_ROOT / "docs" / "examples"


@pytest.fixture
def recipe_env(server: Any, spool_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    prompt = server.create_prompt()
    for name, value in client_env(server.url, spool_dir).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GREETING_PROMPT_ID", prompt["prompt_id"])
    monkeypatch.syspath_prepend(str(EXAMPLES))
    yield prompt["prompt_id"]
    for module in ("fastapi_app", "flask_app", "lambda_handler", "desktop_tool"):
        sys.modules.pop(module, None)


def test_fastapi_lifespan_creates_and_closes_the_async_client(server: Any, recipe_env: str) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    app_module = importlib.import_module("fastapi_app")
    with TestClient(app_module.app) as http:  # runs the lifespan: startup, then shutdown on exit
        run = http.post("/greet/ada").json()
        assert run["text"]
        clicked = http.post(f"/runs/{run['run_id']}/clicked", params={"experiment_id": run["experiment_id"]})
        event_id = clicked.json()["event_id"]
    assert server.stored_event_ids() == [event_id]  # aclose() in the lifespan delivered it


def test_flask_app_factory(server: Any, recipe_env: str, spool_dir: Path) -> None:
    pytest.importorskip("flask")
    flask_app = importlib.import_module("flask_app")
    client = PromptStreamClient(agent_config=fast(spool_dir))
    http = flask_app.create_app(client).test_client()
    run = http.post("/greet/ada").get_json()
    converted = http.post(
        f"/runs/{run['run_id']}/converted", query_string={"experiment_id": run["experiment_id"]}, json={"plan": "pro"}
    )
    assert client.flush(timeout=10)
    client.close()
    assert server.stored_event_ids() == [converted.get_json()["event_id"]]


def test_lambda_handler_flushes_before_it_returns(server: Any, recipe_env: str) -> None:
    handler = importlib.import_module("lambda_handler")
    for number in range(3):  # warm invocations reuse the module's client
        answer = handler.handler({"user_id": f"u{number}", "clicked": True}, context=None)
        assert answer["delivered"] is True
        assert server.store.count("events") == number + 1  # already stored when the handler returned
    handler.client.close()


def test_the_desktop_tool_sends_its_offline_backlog_on_the_next_start(server: Any, spool_dir: Path) -> None:
    run_id, experiment_id = make_run(server)
    env = {**client_env(server.url, spool_dir), "PYTHONPATH": f"{EXAMPLES}:{REPO_ROOT}"}
    tool = f"import desktop_tool; desktop_tool.main([{run_id!r}, {experiment_id!r}, *ARGS])"
    server.thread.stop()  # offline
    for waiting, rating in enumerate(("4", "5"), start=1):
        offline = run_child(tool.replace("ARGS", repr(["--rating", rating])), env)
        assert offline.returncode == 0, offline.stderr
        assert f"delivered: 0, waiting in the spool: {waiting}" in offline.stdout
    assert server.store.count("events") == 0
    server.thread.start()
    online = run_child(tool.replace("ARGS", "[]"), env)  # a start with nothing new to track
    assert online.returncode == 0, online.stderr
    assert "delivered: 2, waiting in the spool: 0" in online.stdout
    assert server.store.count("events") == 2


def test_fastapi_under_uvicorn_with_two_workers(server: Any, spool_dir: Path, children: list[Any]) -> None:
    """The recipe as deployed: uvicorn --workers 2, real HTTP, then SIGTERM; every worker's lifespan delivers."""
    pytest.importorskip("fastapi")
    import signal
    import socket
    import subprocess

    import httpx

    from .helpers import wait_until

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    prompt = server.create_prompt()
    env = {
        **client_env(server.url, spool_dir),
        "GREETING_PROMPT_ID": prompt["prompt_id"],
        "PYTHONPATH": f"{EXAMPLES}:{REPO_ROOT}",
        "PATH": "/usr/bin:/bin",
    }
    uvicorn = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "fastapi_app:app", "--workers", "2", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    children.append(uvicorn)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/docs", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    assert wait_until(up, timeout=30), "uvicorn did not come up"
    clicked: list[str] = []
    with httpx.Client(base_url=url, timeout=10) as http:
        for number in range(60):
            run = http.post(f"/greet/user-{number}").json()
            answer = http.post(f"/runs/{run['run_id']}/clicked", params={"experiment_id": run["experiment_id"]})
            clicked.append(answer.json()["event_id"])
    uvicorn.send_signal(signal.SIGTERM)
    output, _ = uvicorn.communicate(timeout=60)
    assert "Traceback" not in output, output
    assert sorted(server.stored_event_ids()) == sorted(clicked)
