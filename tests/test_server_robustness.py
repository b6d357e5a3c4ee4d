"""The reference server stays responsive and well-behaved: a slow model delays only its own run, an unexpected error
is a clean 500 that keeps the keep-alive connection, idempotent runs stay single under concurrency, and its database
files are owner-only. Real server on loopback; orderings asserted, never wall-clock thresholds."""

from __future__ import annotations

import os
import stat
import sys
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptstream.server import ServerThread, Store

from .helpers import API_KEY, wait_until

AUTH = {"Authorization": f"Bearer {API_KEY}"}


class GatedProvider:
    """A model that blocks on inputs containing "slow" until the test opens the gate (bounded: 30 s at most)."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.calls = 0
        self.waiting = 0
        self.finished = 0
        self._lock = threading.Lock()

    def complete(self, template: str, inputs: dict[str, Any]) -> str:
        with self._lock:
            self.calls += 1
        if "slow" in inputs:
            with self._lock:
                self.waiting += 1
            self.entered.set()
            self.gate.wait(30)
        with self._lock:
            self.finished += 1
        return template


class ExplodingProvider:
    def complete(self, template: str, inputs: dict[str, Any]) -> str:
        raise RuntimeError("model crashed")


@pytest.fixture
def gated(storage_factory: Any) -> Iterator[tuple[ServerThread, Store, GatedProvider]]:
    provider = GatedProvider()
    store = storage_factory(provider=provider)  # both backends: the storage contract
    server = ServerThread(store, [API_KEY]).start()
    try:
        yield server, store, provider
    finally:
        provider.gate.set()
        server.stop()


def event(run: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "type": "click",
        "prompt_run_id": run["run_id"],
        "experiment_id": run["experiment_id"],
        "timestamp": "2026-11-27T10:00:00.000Z",
        "label": "cta",
    }


def test_a_slow_model_delays_neither_event_ingestion_nor_other_runs(
    gated: tuple[ServerThread, Store, GatedProvider],
) -> None:
    server, store, provider = gated
    prompt = store.create_prompt("default", "p", "Hi {{name}}")
    runs_path = f"/v1/prompts/{prompt['prompt_id']}/runs"
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as http, ThreadPoolExecutor(1) as pool:
        fast_run = http.post(runs_path, json={"inputs": {"name": "x"}}).json()
        slow = pool.submit(http.post, runs_path, json={"inputs": {"name": "x", "slow": 1}})
        assert provider.entered.wait(30)  # the slow run is inside the model now
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as other:
            batch = other.post("/v1/events/batch", json={"sent_at": "x", "events": [event(fast_run)]})
            another_run = other.post(runs_path, json={"inputs": {"name": "y"}})
            listed = other.get("/v1/prompts")
        still_in_flight = not slow.done() and not provider.gate.is_set()
        provider.gate.set()
        assert slow.result().status_code == 200
    assert still_in_flight  # everything below completed while the slow run was still waiting for its model
    assert batch.json()["accepted"] == 1 and store.count("events") == 1
    assert another_run.status_code == 200 and listed.status_code == 200
    assert store.count("runs") == 3


def test_a_crowd_of_slow_runs_leaves_threads_for_event_ingestion(
    gated: tuple[ServerThread, Store, GatedProvider],
) -> None:
    server, store, provider = gated
    prompt = store.create_prompt("default", "p", "Hi {{name}}")
    runs_path = f"{server.url}/v1/prompts/{prompt['prompt_id']}/runs"
    fast_run = httpx.post(runs_path, json={"inputs": {"name": "x"}}, headers=AUTH).json()
    crowd = 50  # more than the 40 worker threads Starlette shares between all requests
    with ThreadPoolExecutor(crowd) as pool:
        slow = [
            pool.submit(httpx.post, runs_path, json={"inputs": {"name": "x", "slow": 1}}, headers=AUTH, timeout=60)
            for _ in range(crowd)
        ]
        try:
            assert wait_until(lambda: provider.waiting == crowd, timeout=30), provider.waiting
            batch = httpx.post(
                f"{server.url}/v1/events/batch",
                json={"sent_at": "x", "events": [event(fast_run)]},
                headers=AUTH,
                timeout=60,
            )
            still_waiting = not provider.gate.is_set() and not any(future.done() for future in slow)
        finally:
            provider.gate.set()
        assert all(future.result().status_code == 200 for future in slow)
    assert still_waiting and batch.json()["accepted"] == 1


def test_one_idempotency_key_sent_concurrently_makes_one_run_and_one_model_call(
    gated: tuple[ServerThread, Store, GatedProvider],
) -> None:
    server, store, provider = gated
    prompt = store.create_prompt("default", "p", "Hi {{name}}")
    path = f"/v1/prompts/{prompt['prompt_id']}/runs"
    body = {"inputs": {"name": "x", "slow": 1}, "external_user_id": "u"}
    with ThreadPoolExecutor(4) as pool:

        def post() -> httpx.Response:
            return httpx.post(f"{server.url}{path}", json=body, headers={**AUTH, "Idempotency-Key": "same"}, timeout=60)

        answers = [pool.submit(post) for _ in range(4)]
        assert provider.entered.wait(30)
        assert wait_until(lambda: store.count("runs") == 0 and provider.calls >= 1, timeout=5)
        provider.gate.set()
        responses = [future.result() for future in answers]
    assert {r.status_code for r in responses} == {200}
    assert len({r.content for r in responses}) == 1
    assert store.count("runs") == 1 and provider.calls == 1


def test_an_unexpected_error_is_a_json_500_that_keeps_the_keep_alive_connection(storage_factory: Any) -> None:
    store = storage_factory(provider=ExplodingProvider())
    server = ServerThread(store, [API_KEY]).start()
    prompt = store.create_prompt("default", "p", "Hi {{name}}")
    peers: set[Any] = set()
    try:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=10, limits=limits) as http:
            for _ in range(25):
                failed = http.post(f"/v1/prompts/{prompt['prompt_id']}/runs", json={"inputs": {"name": "x"}})
                assert failed.status_code == 500
                assert failed.json() == {"error": {"type": "internal_error", "message": "internal server error"}}
                assert failed.headers["x-request-id"]
                following = http.get("/v1/prompts")  # on the same connection, never reset
                assert following.status_code == 200
                for response in (failed, following):
                    stream = response.extensions["network_stream"]
                    peers.add(stream.get_extra_info("client_addr"))
    finally:
        server.stop()
        store.close()
    assert len(peers) == 1  # one connection served all 50 requests: the server never closed it


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(umask=st.sampled_from([0o000, 0o002, 0o022, 0o027]), nested=st.booleans())
def test_the_database_and_its_wal_and_shm_are_owner_only(tmp_path: Path, umask: int, nested: bool) -> None:
    directory = tmp_path / uuid.uuid4().hex / ("a/b" if nested else "")
    path = directory / "server.sqlite3"
    previous = os.umask(umask)
    try:
        store = Store(path)
        store.create_prompt("default", "p", "Hi {{name}}")  # a write: the -wal and -shm exist now
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in path.parent.glob("server.sqlite3*")}
        store.close()
    finally:
        os.umask(previous)
    assert set(modes) >= {"server.sqlite3", "server.sqlite3-wal", "server.sqlite3-shm"}
    assert all(mode & 0o077 == 0 for mode in modes.values()), {k: oct(v) for k, v in modes.items()}


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
def test_an_existing_database_keeps_the_mode_its_owner_gave_it(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    Store(path).close()
    path.chmod(0o640)
    Store(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_a_store_refuses_unusable_api_keys_without_echoing_them(tmp_path: Path) -> None:
    store = Store()
    for key in ("", " ", "ps key", "ps_\x00", "ps_é", "tab\t"):
        with pytest.raises(ValueError, match="API key #2") as info:
            ServerThread(store, [API_KEY, key])
        assert key not in str(info.value) or not key.strip()
    store.close()


class GatedIngestion:
    """A storage whose event ingestion blocks until the test opens the gate (bounded: 30 s); everything else is the
    real storage's. Counts the batches inside it at once."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.gate = threading.Event()
        self.inside = 0
        self.peak = 0
        self.arrived = 0
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def ingest_events(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self.arrived += 1
            self.inside += 1
            self.peak = max(self.peak, self.inside)
        try:
            self.gate.wait(30)
            return self._store.ingest_events(*args, **kwargs)
        finally:
            with self._lock:
                self.inside -= 1


def test_a_flood_of_event_batches_leaves_threads_for_runs_and_reads(storage_factory: Any) -> None:
    """Batches queue for a few ingestion threads of their own (as coroutines, holding no thread and no pooled
    connection), so a flood of them never takes what a run or a read needs."""
    from promptstream.server._app import INGEST_THREADS

    store = storage_factory()
    gated = GatedIngestion(store)
    server = ServerThread(gated, [API_KEY]).start()  # type: ignore[arg-type]
    try:
        prompt = store.create_prompt("default", "p", "Hi {{name}}")
        runs_path = f"{server.url}/v1/prompts/{prompt['prompt_id']}/runs"
        first = httpx.post(runs_path, json={"inputs": {"name": "x"}}, headers=AUTH).json()
        flood = 48  # more than every thread the server's storage work had before batches got their own lane
        with ThreadPoolExecutor(flood) as pool:
            batches = [
                pool.submit(
                    httpx.post,
                    f"{server.url}/v1/events/batch",
                    json={"sent_at": "x", "events": [event(first)]},
                    headers=AUTH,
                    timeout=60,
                )
                for _ in range(flood)
            ]
            try:
                assert wait_until(lambda: gated.inside == INGEST_THREADS, timeout=30), gated.inside
                run = httpx.post(runs_path, json={"inputs": {"name": "y"}}, headers=AUTH, timeout=60)
                listed = httpx.get(f"{server.url}/v1/prompts", headers=AUTH, timeout=60)
                waiting = not gated.gate.is_set() and not any(future.done() for future in batches)
            finally:
                gated.gate.set()
            answers = [future.result() for future in batches]
    finally:
        gated.gate.set()
        server.stop()
    assert waiting  # the run and the read were answered while every batch was still held
    assert run.status_code == 200 and listed.status_code == 200
    assert gated.peak <= INGEST_THREADS
    assert all(answer.status_code == 200 for answer in answers) and gated.arrived == flood
    assert store.count("events") == flood  # every held batch stored once the gate opened


def test_a_request_that_finds_no_free_database_connection_is_a_503_to_retry(pg_url: str) -> None:
    """PostgreSQL: when every pooled connection stays busy past the pool's wait, the request is answered 503 with
    Retry-After (the SDK retries it), not a 500, and the busy request still completes."""
    import psycopg

    from promptstream.server._pgstore import PgStore

    store = PgStore(pg_url, max_connections=1, pool_wait=0.5)
    server = ServerThread(store, [API_KEY]).start()
    blocker = psycopg.connect(pg_url)
    try:
        prompt = store.create_prompt("default", "p", "Hi {{name}}")
        runs_path = f"{server.url}/v1/prompts/{prompt['prompt_id']}/runs"
        experiment_id = httpx.post(runs_path, json={"inputs": {"name": "x"}}, headers=AUTH).json()["experiment_id"]
        # another client holds the prompt's row: ending its experiment waits on that lock, holding the pool's one
        # connection
        blocker.execute("SELECT 1 FROM prompts WHERE id = %s FOR UPDATE", (prompt["prompt_id"],))
        with ThreadPoolExecutor(1) as pool:
            ending = pool.submit(
                httpx.post, f"{server.url}/v1/experiments/{experiment_id}/end", headers=AUTH, timeout=60
            )
            assert wait_until(lambda: _waiting_on_a_lock(pg_url), timeout=30)
            busy = httpx.get(f"{server.url}/v1/prompts", headers=AUTH, timeout=60)
            blocker.rollback()
            ended = ending.result()
        after = httpx.get(f"{server.url}/v1/prompts", headers=AUTH, timeout=60)
    finally:
        blocker.close()
        server.stop()
        store.close()
    assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
    assert busy.json()["error"]["type"] == "database_busy"
    assert ended.status_code == 200 and after.status_code == 200


def _waiting_on_a_lock(pg_url: str) -> bool:
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchone()
    return row is not None and int(row[0]) > 0


def _write_by_hand(store: Any, sql: str, *args: Any) -> None:
    """SQL from another tool, straight into the store's database (SQLite's ``?`` marks; ``%s`` on PostgreSQL)."""
    if hasattr(store, "url"):
        import psycopg

        with psycopg.connect(store.url) as conn:
            conn.execute(sql.replace("?", "%s").encode(), args)
    else:
        import sqlite3

        with sqlite3.connect(store.path) as conn:
            conn.execute(sql, args)


@pytest.mark.parametrize(
    "damage",
    [
        "UPDATE experiments SET ended_at = 1 WHERE prompt_id = ?",
        'UPDATE experiments SET variants = \'[{"version": 99, "weight": 1.0}]\' WHERE prompt_id = ?',
    ],
    ids=["no-live-experiment", "missing-version"],
)
def test_a_database_damaged_by_another_tool_is_a_409_for_runs_and_assigns(storage_factory: Any, damage: str) -> None:
    """Both backends answer a prompt whose live experiment is gone, or serves a version that does not exist, with
    409 experiment_misconfigured: never a 500, and the same on SQLite and PostgreSQL."""
    store = storage_factory()
    server = ServerThread(store, [API_KEY]).start()
    try:
        prompt = store.create_prompt("default", "p", "Hi {{name}}")
        _write_by_hand(store, damage, prompt["prompt_id"])
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as http:
            run = http.post(f"/v1/prompts/{prompt['prompt_id']}/runs", json={"inputs": {"name": "x"}})
            assigned = http.post("/v1/assignments", json={"prompt_id": prompt["prompt_id"], "external_user_id": "u"})
    finally:
        server.stop()
    for answer in (run, assigned):
        assert answer.status_code == 409, answer.text
        assert answer.json()["error"]["type"] == "experiment_misconfigured"
    assert store.count("runs") == 0
