"""Helpers shared by the tests: waiting on conditions, child processes, fault-injecting ASGI middleware."""

from __future__ import annotations

import json
import os
import random
import re
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from promptstream import AgentConfig, PromptStreamClient

API_KEY = "ps_test_key_0123456789"
REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A loopback port nobody listens on right now (for "nothing listens there"; a server should bind port 0)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# what servers print once they listen: ours ("... server on http://127.0.0.1:PORT"), uvicorn ("Uvicorn running on
# http://127.0.0.1:PORT"), gunicorn ("Listening at: http://127.0.0.1:PORT")
_LISTENING = re.compile(r"https?://(?:127\.0\.0\.1|localhost|0\.0\.0\.0|\[::1\]):([1-9][0-9]*)")


class ServerProcess(subprocess.Popen[str]):
    """A server child process whose first lines of output (read to learn its port) ``communicate()`` still returns."""

    early_output = ""
    _drainer: threading.Thread | None = None

    def drain(self) -> None:
        """Keep reading the output into ``early_output`` on a thread: a server that logs every request (thousands
        in a load test) would otherwise fill the pipe and block on its next log line."""
        assert self.stdout is not None
        fd = self.stdout.fileno()

        def read() -> None:
            while chunk := os.read(fd, 65536):
                self.early_output += chunk.decode("utf-8", "replace")

        self._drainer = threading.Thread(target=read, name="test-server-output", daemon=True)
        self._drainer.start()

    def communicate(self, input: str | None = None, timeout: float | None = None) -> tuple[str, str]:
        if self._drainer is not None:  # the thread owns the pipe: wait for the exit and the end of the output
            self.wait(timeout)
            self._drainer.join(timeout)
            early, self.early_output = self.early_output, ""
            return early, ""
        out, err = super().communicate(input, timeout)
        early, self.early_output = self.early_output, ""
        return early + (out or ""), err


def _read_port(process: ServerProcess, timeout: float) -> int | None:
    """The port the child reports once it listens, read byte by byte straight from the pipe (nothing is buffered
    away from a later ``communicate()``); None if it exits or stays silent for ``timeout``."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    found: list[int] = []

    def scan() -> None:
        line = bytearray()
        while True:
            byte = os.read(fd, 1)
            if not byte:
                break
            line += byte
            if byte == b"\n":
                text = line.decode("utf-8", "replace")
                process.early_output += text
                line.clear()
                match = _LISTENING.search(text)
                if match:
                    found.append(int(match.group(1)))
                    return
        process.early_output += line.decode("utf-8", "replace")

    reader = threading.Thread(target=scan, name="promptstream-test-port-reader", daemon=True)
    reader.start()
    reader.join(timeout)
    return found[0] if found else None


def start_server_process(
    command: list[str], env: dict[str, str], *, ready_path: str, cwd: Path | None = None, drain: bool = False
) -> tuple[subprocess.Popen[str], str]:
    """Start a real HTTP server process on a free port (``{port}`` in ``command``); returns it and its URL once
    ``ready_path`` answers at all (any status below 500). Output goes to the process's stdout pipe.

    The child binds port 0 itself and reports the port it got (no window in which another process can take a port
    we picked and released); the report is read from its output."""
    process = ServerProcess(
        [part.format(port=0) for part in command],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    port = _read_port(process, timeout=30)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}{ready_path}", timeout=1).status_code < 500
        except httpx.TransportError:
            return process.poll() is not None  # died: stop waiting, the caller's asserts show why

    if port is None or not (wait_until(up, timeout=30) and process.poll() is None):
        process.kill()
        output, _ = process.communicate(timeout=10)
        raise AssertionError(f"server did not come up: {command}\n{output}")
    if drain:
        process.drain()
    return process, url


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.01) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes; returns its last value. Never a blind sleep."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        pause.wait(interval)


def run_child(code: str, env: dict[str, str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (a real separate process, like a user's script)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def spawn_child(code: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def spooled_event_ids(spool_dir: Path) -> set[str]:
    """The event ids waiting in every spool file under ``spool_dir``, read straight from SQLite."""
    ids: set[str] = set()
    for path in spool_dir.glob("spool-*.sqlite3"):
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            ids.update(event_id for (event_id,) in db.execute("SELECT json_extract(payload, '$.event_id') FROM events"))
        except sqlite3.OperationalError as exc:
            if "no such table" not in str(exc):  # a spool still being created by its process is empty
                raise
        finally:
            db.close()
    return ids


class FaultInjector:
    """ASGI middleware that makes requests fail the way real networks and servers do.

    A request fails with ``probability``, or (with ``first_n``) exactly the first N requests fail. With
    ``after_processing`` the app handles the request first (so the run or the events are stored) and the client
    gets the failure instead of the real answer: the case that tests idempotency. ``only_path`` limits the faults
    to one path; ``status`` and ``headers`` shape the failure.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        probability: float = 0.0,
        first_n: int | None = None,
        after_processing: bool = False,
        status: int = 503,
        headers: dict[str, str] | None = None,
        only_path: str | None = None,
        seed: int = 7,
    ) -> None:
        self.app = app
        self.probability = probability
        self.first_n = first_n
        self.after_processing = after_processing
        self.status = status
        self.headers = headers or {}
        self.only_path = only_path
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.faults = 0
        self.requests: list[float] = []  # monotonic arrival times of the requests in scope

    def _should_fail(self) -> bool:
        with self.lock:
            self.requests.append(time.monotonic())
            fail = self.faults < self.first_n if self.first_n is not None else self.random.random() < self.probability
            self.faults += fail
            return fail

    async def _send_failure(self, send: Send) -> None:
        body = json.dumps({"error": {"type": "unavailable", "message": "injected fault"}}).encode()
        headers = [(b"content-type", b"application/json")]
        headers += [(k.lower().encode(), v.encode()) for k, v in self.headers.items()]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.only_path and scope["path"] != self.only_path) or not self._should_fail():
            await self.app(scope, receive, send)
            return
        if self.after_processing:

            async def swallow(message: Message) -> None:  # the app's real answer never reaches the client
                return None

            await self.app(scope, receive, swallow)
        await self._send_failure(send)


def client_env(base_url: str, spool_dir: Path, **extra: Any) -> dict[str, str]:
    env = {
        "PROMPTSTREAM_API_KEY": API_KEY,
        "PROMPTSTREAM_BASE_URL": base_url,
        "PROMPTSTREAM_SPOOL_DIR": str(spool_dir),
        "PYTHONPATH": str(REPO_ROOT),
    }
    env.update({k: str(v) for k, v in extra.items()})
    return env


def fast(spool_dir: Path, **overrides: Any) -> AgentConfig:
    """Agent settings that keep tests quick: short intervals and backoff."""
    options: dict[str, Any] = {
        "spool_dir": spool_dir,
        "flush_interval": 0.05,
        "max_backoff": 0.2,
        "auth_pause": 0.5,
        "shutdown_timeout": 2.0,
    }
    options.update(overrides)
    return AgentConfig(**options)


def make_run(server: Any) -> tuple[str, str]:
    """A real run on the server (events must reference one), created through the server's store."""
    prompt = server.create_prompt()
    response = httpx.post(
        f"{server.url}/v1/prompts/{prompt['prompt_id']}/runs",
        json={"inputs": {"name": "x"}},
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    body = response.json()
    return body["run_id"], body["experiment_id"]


def track_many(client: PromptStreamClient, run_id: str, experiment_id: str, n: int) -> list[str]:
    ids = []
    for i in range(n):
        kind = i % 5
        if kind == 0:
            ids.append(client.track_click(run_id, experiment_id, "cta", external_user_id=f"u{i}", metadata={"i": i}))
        elif kind == 1:
            ids.append(client.track_conversion(run_id, experiment_id, source="web"))
        elif kind == 2:
            ids.append(client.track_feedback(run_id, experiment_id, thumbs_up=i % 2 == 0))
        elif kind == 3:
            ids.append(client.track_rating(run_id, experiment_id, 4.5))
        else:
            ids.append(client.track_engagement(run_id, experiment_id, 12.25))
    return ids


def total_duplicates(server: Any) -> int:
    return sum(row["duplicates"] for row in server.store.batch_log())
