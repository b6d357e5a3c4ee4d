from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from promptstream import PromptStreamClient
from promptstream.server import ServerThread, Store
from promptstream.server._storage import Storage

from .helpers import API_KEY
from .postgres import pg_cluster, pg_url  # noqa: F401  (fixtures)

# Which storage backends the server's tests run on. Every one by default; tox narrows it per environment so that
# CI runs the whole server suite on both backends once (py312) rather than four times (tox.ini).
BACKENDS = tuple(os.environ.get("PROMPTSTREAM_TEST_BACKENDS", "sqlite,postgresql").split(","))
# The fault-injection suite attacks the SDK's agent; the server behind it is only a peer, so one backend is enough
# there, except for the server's own fuzzing.
_AGENT_FAULTS = Path(__file__).parent / "faults"
_SERVER_FAULTS = {"test_server_fuzz.py"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sqlite_only: reads or writes the SQLite file of the server directly; runs on SQLite alone"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # One contract suite for both storage backends: every test that starts a server runs on each.
    if "backend" in metafunc.fixturenames:
        path = Path(metafunc.definition.path)
        agent_fault = path.parent == _AGENT_FAULTS and path.name not in _SERVER_FAULTS
        sqlite_only = agent_fault or metafunc.definition.get_closest_marker("sqlite_only") is not None
        metafunc.parametrize("backend", ("sqlite",) if sqlite_only else BACKENDS, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def storage_factory(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., Storage]]:
    """Empty stores of the test's backend: SQLite files in tmp_path, or fresh PostgreSQL databases."""
    made: list[Storage] = []

    def make(**kwargs: Any) -> Storage:
        store: Storage
        if backend == "postgresql":
            from promptstream.server._pgstore import PgStore

            store = PgStore(request.getfixturevalue("pg_url") if not made else _another_database(request), **kwargs)
        else:
            store = Store(tmp_path / f"server-{len(made)}.sqlite3", **kwargs)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


def _another_database(request: pytest.FixtureRequest) -> str:
    cluster = request.getfixturevalue("pg_cluster")
    url: str = cluster.create_database()
    request.addfinalizer(lambda: cluster.drop_database(url))
    return url


class RunningServer:
    """A reference server on a free loopback port, with its store for assertions on what it really stored."""

    def __init__(self, store: Any, thread: ServerThread) -> None:
        self.store = store
        self.thread = thread

    @property
    def url(self) -> str:
        return self.thread.url

    def create_prompt(self, template: str = "Hello {{name}}!", name: str = "greeting") -> dict[str, Any]:
        return self.store.create_prompt("default", name, template)

    def stored_event_ids(self) -> list[str]:
        return self.store.event_ids()

    def database(self) -> Any:
        """A connection of its own to the server's database, whichever the backend, for tests that read or seed
        its tables: ``execute``/``executemany`` with ``?`` marks; ``with db:`` commits."""
        if hasattr(self.store, "url"):
            return _PostgresConnection(self.store.url)
        import sqlite3

        return sqlite3.connect(self.store.path, timeout=10)


class _PostgresConnection:
    """psycopg behind sqlite3's small API, so a test's SQL runs unchanged on both backends."""

    def __init__(self, url: str) -> None:
        import psycopg

        self._conn = psycopg.connect(url)

    def execute(self, query: str, args: Any = ()) -> Any:
        return self._conn.execute(query.replace("?", "%s").encode(), tuple(args))

    def executemany(self, query: str, rows: Any) -> None:
        with self._conn.cursor() as cursor:
            cursor.executemany(query.replace("?", "%s").encode(), list(rows))

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> _PostgresConnection:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self._conn.commit()
        else:
            self._conn.rollback()


@pytest.fixture
def server_factory(storage_factory: Callable[..., Storage]) -> Iterator[Callable[..., RunningServer]]:
    started: list[RunningServer] = []

    def start(**kwargs: Any) -> RunningServer:
        store = storage_factory()
        thread = ServerThread(store, [API_KEY], **kwargs).start()
        running = RunningServer(store, thread)
        started.append(running)
        return running

    yield start
    for running in started:
        running.thread.stop()


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
