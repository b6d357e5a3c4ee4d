from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from promptstream import PromptStreamClient
from promptstream.server import ServerThread, Store

from .helpers import API_KEY


class RunningServer:
    """A reference server on a free loopback port, with its store for assertions on what it really stored."""

    def __init__(self, store: Store, thread: ServerThread) -> None:
        self.store = store
        self.thread = thread

    @property
    def url(self) -> str:
        return self.thread.url

    def create_prompt(self, template: str = "Hello {{name}}!", name: str = "greeting") -> dict[str, Any]:
        return self.store.create_prompt(name, template)

    def stored_event_ids(self) -> list[str]:
        return self.store.event_ids()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    started: list[RunningServer] = []

    def start(**kwargs: Any) -> RunningServer:
        store = Store(tmp_path / f"server-{len(started)}.sqlite3")
        thread = ServerThread(store, [API_KEY], **kwargs).start()
        running = RunningServer(store, thread)
        started.append(running)
        return running

    yield start
    for running in started:
        running.thread.stop()
        running.store.close()


@pytest.fixture
def server(server_factory: Callable[..., RunningServer]) -> RunningServer:
    return server_factory()


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"


@pytest.fixture
def client_factory(spool_dir: Path) -> Iterator[Callable[..., PromptStreamClient]]:
    clients: list[PromptStreamClient] = []

    def make(base_url: str, **kwargs: Any) -> PromptStreamClient:
        api_key = kwargs.pop("api_key", API_KEY)
        # Test defaults as keywords, unless the test gives an agent_config: keywords given explicitly override its
        # fields (one way to configure), so they would replace what the test chose.
        options: dict[str, Any] = (
            {}
            if "agent_config" in kwargs
            else {"spool_dir": spool_dir, "flush_interval": 0.05, "shutdown_timeout": 2.0}
        )
        options.update(kwargs)
        client = PromptStreamClient(api_key, base_url=base_url, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close(timeout=2.0)


@pytest.fixture
def client(server: RunningServer, client_factory: Callable[..., PromptStreamClient]) -> PromptStreamClient:
    return client_factory(server.url)


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[str]]]:
    """Child processes a test spawns: whatever happens in the test, none outlives it."""
    spawned: list[subprocess.Popen[str]] = []
    yield spawned
    for child in spawned:
        if child.poll() is None:
            child.kill()
        child.wait(10)
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture(autouse=True)
def _quiet_server_logs() -> None:
    logging.getLogger("promptstream.server").setLevel(logging.WARNING)
