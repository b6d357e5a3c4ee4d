"""Helpers shared by the tests: waiting on conditions, child processes, fault-injecting ASGI middleware."""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import sqlite3
import struct
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_KEY = "ps_test_key_0123456789"
REPO_ROOT = Path(__file__).resolve().parent.parent


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
            ids.update(json.loads(payload)["event_id"] for (payload,) in db.execute("SELECT payload FROM events"))
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


class ChaosProxy:
    """A loopback TCP proxy that resets a share of connections while the response is coming back, after the server
    has processed the request: the client sees a connection cut mid-body and must retry with the same key."""

    def __init__(self, upstream_port: int, *, cut_probability: float = 0.0, seed: int = 11) -> None:
        self.upstream_port = upstream_port
        self.cut_probability = cut_probability
        self.random = random.Random(seed)
        self.cuts = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._accept_thread = threading.Thread(target=self._accept, name="chaos-proxy-accept", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ChaosProxy:
        self._accept_thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._accept_thread.join(5)
        for thread in self._threads:
            thread.join(5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
            except OSError:
                _reset(client)
                continue
            for src, dst, cut in ((client, upstream, False), (upstream, client, True)):
                thread = threading.Thread(target=self._pump, args=(src, dst, cut), name="chaos-proxy-pump", daemon=True)
                thread.start()
                self._threads.append(thread)

    def _pump(self, src: socket.socket, dst: socket.socket, cut: bool) -> None:
        src.settimeout(0.2)
        try:
            while not self._stop.is_set():
                try:
                    data = src.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                if cut:
                    with self._lock:
                        do_cut = self.random.random() < self.cut_probability
                        self.cuts += do_cut
                    if do_cut:
                        dst.sendall(data[: len(data) // 2])  # half a response, then a reset
                        _reset(dst)
                        _reset(src)
                        return
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.close()


def _reset(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
