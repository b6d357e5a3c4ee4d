"""Every example in docs/examples/ (the recipes in docs/recipes.md) runs here against the reference server.
gunicorn_app.py is run by tests/faults/test_gunicorn.py with four workers."""

from __future__ import annotations

import ast
import importlib
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from promptstream import PromptStreamClient

from .helpers import REPO_ROOT, client_env, fast, make_run, run_child, start_server_process, wait_until

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


def serve(command: list[str], env: dict[str, str], children: list[Any], ready_path: str) -> str:
    process, url = start_server_process(command, env, ready_path=ready_path)
    children.append(process)
    return url


def stop_gracefully(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert "Traceback" not in output, output


def recipe_process_env(server: Any, spool_dir: Path) -> dict[str, str]:
    return {
        **client_env(server.url, spool_dir),
        "GREETING_PROMPT_ID": server.create_prompt()["prompt_id"],
        "PYTHONPATH": f"{EXAMPLES}:{REPO_ROOT}",
        "PATH": "/usr/bin:/bin",
    }


def test_fastapi_under_uvicorn_with_two_workers(server: Any, spool_dir: Path, children: list[Any]) -> None:
    """The recipe as deployed: uvicorn --workers 2, real HTTP, then SIGTERM; every worker's lifespan delivers."""
    pytest.importorskip("fastapi")
    env = recipe_process_env(server, spool_dir)
    command = [sys.executable, "-m", "uvicorn", "fastapi_app:app", "--workers", "2", "--port", "{port}"]
    url = serve(command, env, children, ready_path="/docs")
    clicked: list[str] = []
    with httpx.Client(base_url=url, timeout=10) as http:
        for number in range(60):
            run = http.post(f"/greet/user-{number}").json()
            answer = http.post(f"/runs/{run['run_id']}/clicked", params={"experiment_id": run["experiment_id"]})
            clicked.append(answer.json()["event_id"])
    stop_gracefully(children[-1])
    assert sorted(server.stored_event_ids()) == sorted(clicked)


def test_django_app_config_creates_one_client_per_gunicorn_worker(
    server: Any, spool_dir: Path, children: list[Any]
) -> None:
    """The Django project under gunicorn with two workers: AppConfig.ready() makes each worker's client, views use
    it, and after SIGTERM every rating is stored (the exit hook delivered; the project has no shutdown code)."""
    pytest.importorskip("django")
    env = {**recipe_process_env(server, spool_dir), "DJANGO_SETTINGS_MODULE": "django_greetings.settings"}
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    url = serve(
        [gunicorn, "--workers", "2", "django_greetings.wsgi", "--bind", "127.0.0.1:{port}"],
        env,
        children,
        ready_path="/",
    )
    rated: list[str] = []
    with httpx.Client(base_url=url, timeout=10) as http:
        for number in range(40):
            run = http.post(f"/greet/user-{number}")
            assert run.status_code == 200, run.text
            answer = http.post(
                f"/runs/{run.json()['run_id']}/rated", params={"experiment_id": run.json()["experiment_id"], "stars": 4}
            )
            rated.append(answer.json()["event_id"])
    stop_gracefully(children[-1])
    assert sorted(server.stored_event_ids()) == sorted(rated)


def test_celery_prefork_workers_create_their_client_after_the_fork(
    server: Any, spool_dir: Path, children: list[Any], tmp_path: Path
) -> None:
    """A real `celery worker` with two prefork children and a filesystem broker: each child makes its client in
    worker_process_init, tasks track through it and flush when they end, and a warm shutdown leaves no traceback."""
    pytest.importorskip("celery")
    broker = tmp_path / "broker"
    folders = {"data_folder_in": "queue", "data_folder_out": "queue", "processed_folder": "processed"}
    folders["control_folder"] = "control"  # kombu's default is ./control, in whatever directory the test runs
    options = {option: str(broker / folder) for option, folder in folders.items()}
    for folder in options.values():
        Path(folder).mkdir(parents=True, exist_ok=True)
    (tmp_path / "celery_test_config.py").write_text(
        f"broker_transport_options = {options!r}\nworker_hijack_root_logger = False\n"
    )
    env = {
        **recipe_process_env(server, spool_dir),
        "CELERY_BROKER_URL": "filesystem://",
        "CELERY_CONFIG_MODULE": "celery_test_config",
        "PYTHONPATH": f"{EXAMPLES}:{REPO_ROOT}:{tmp_path}",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--pool", "prefork", "--concurrency", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    children.append(worker)
    sender = run_child(
        """
        import celery_app
        for number in range(30):
            celery_app.greet_and_track.delay(f"user-{number}")
        """,
        env,
    )
    assert sender.returncode == 0, sender.stderr
    stored = wait_until(lambda: server.store.count("events") >= 30, timeout=60)
    stop_gracefully(worker)
    assert stored, f"{server.store.count('events')} of 30 events stored"
    assert len(set(server.stored_event_ids())) == server.store.count("events") == 30


def test_jupyter_notebook_runs_in_a_real_kernel(server: Any, recipe_env: str) -> None:
    """The notebook, executed cell by cell in an ipykernel: its events are acknowledged before the results cell
    reads them, and running the client cell a second time replaces the client without losing anything."""
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(EXAMPLES / "jupyter_notebook.ipynb", as_version=4)
    client_cell, tracking_cell = notebook.cells[1], notebook.cells[2]
    notebook.cells[3:3] = [nbformat.from_dict(client_cell), nbformat.from_dict(tracking_cell)]  # run both again
    nbclient.NotebookClient(notebook, timeout=60, kernel_name="python3").execute()  # raises on a cell's error
    results = notebook.cells[-2].outputs[0]["data"]["text/plain"]
    assert sum(ast.literal_eval(results).values()) == 6
    assert server.store.count("events") == 6
