"""Server instances sharing one PostgreSQL database behave as one server (issue 17 §2): sticky assignment, run
idempotency, event dedup, experiment end and rate limits hold across real ``promptstream serve`` processes on
different ports (one of them with several workers), with real concurrent requests to both."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .helpers import API_KEY, REPO_ROOT, start_server_process

HEADERS = {"Authorization": f"Bearer {API_KEY}"}
shared_settings = settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


def start_serve(pg_url: str, tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    """A real ``promptstream serve`` process on a free port, on the test's PostgreSQL database."""
    command = [sys.executable, "-m", "promptstream", "serve", "--port", "{port}", "--db", pg_url, *args]
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "PYTHONPATH": str(REPO_ROOT),
        "PROMPTSTREAM_SERVER_API_KEYS": API_KEY,
    }
    return start_server_process(command, env, ready_path="/v1/prompts", drain=True)  # it logs every request


@pytest.fixture
def serve_processes(pg_url: str, tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Starts ``serve`` processes on the test's database; stops them all afterwards."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> str:
        process, url = start_serve(pg_url, tmp_path, *args)
        started.append(process)
        return url

    yield start
    for process in started:
        process.terminate()
    for process in started:
        try:
            process.communicate(timeout=40)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate(timeout=10)


@pytest.fixture
def two_instances(serve_processes: Callable[..., str]) -> tuple[str, str]:
    """Two servers on one database: one plain process, one with two worker processes."""
    return serve_processes(), serve_processes("--workers", "2")


def at_once(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls on their own threads, released together by a barrier."""
    barrier = threading.Barrier(len(calls))

    def go(call: Callable[[], Any]) -> Any:
        barrier.wait(30)
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return [future.result(timeout=120) for future in [pool.submit(go, call) for call in calls]]


def create_prompt(url: str, template: str = "Hello {{name}}!") -> dict[str, Any]:
    response = httpx.post(f"{url}/v1/prompts", json={"name": "p", "template": template}, headers=HEADERS)
    assert response.status_code == 201 or response.status_code == 200, response.text
    return dict(response.json())


def count(pg_url: str, query: str, *args: Any) -> int:
    import psycopg

    with psycopg.connect(pg_url) as conn:
        row = conn.execute(query.encode(), args).fetchone()
        assert row is not None
        return int(row[0])


def run(url: str, prompt_id: str, user: str | None, key: str | None = None) -> httpx.Response:
    headers = {**HEADERS, **({"Idempotency-Key": key} if key else {})}
    body = {"inputs": {"name": "x"}, **({"external_user_id": user} if user else {})}
    return httpx.post(f"{url}/v1/prompts/{prompt_id}/runs", json=body, headers=headers, timeout=60)


idempotency_keys = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40)


@shared_settings
@given(keys=st.lists(idempotency_keys, min_size=1, max_size=6, unique=True))
def test_one_idempotency_key_sent_to_two_serve_processes_at_once_makes_one_run(
    two_instances: tuple[str, str], pg_url: str, keys: list[str]
) -> None:
    first, second = two_instances
    prompt = create_prompt(first)
    runs_before = count(pg_url, "SELECT COUNT(*) FROM runs")
    salt = uuid.uuid4().hex[:8]  # each example's keys are new to the database
    keys = [f"{salt}-{key}" for key in keys]
    calls = [
        (lambda url=url, key=key: run(url, prompt["prompt_id"], "user", key))
        for key in keys
        for url in (first, second, first, second)
    ]
    answers = at_once(calls)
    assert all(answer.status_code == 200 for answer in answers), [a.text for a in answers]
    for index in range(len(keys)):
        bodies = {answer.content for answer in answers[index * 4 : index * 4 + 4]}
        assert len(bodies) == 1  # every request with the key got the one run's answer
    run_ids = {answer.json()["run_id"] for answer in answers}
    assert len(run_ids) == len(keys)
    assert count(pg_url, "SELECT COUNT(*) FROM runs") - runs_before == len(keys)


@shared_settings
@given(ids=st.lists(st.uuids().map(str), min_size=1, max_size=40), repeats=st.lists(st.integers(0, 39), max_size=5))
def test_one_batch_sent_to_two_serve_processes_at_once_stores_each_event_once(
    two_instances: tuple[str, str], pg_url: str, ids: list[str], repeats: list[int]
) -> None:
    first, second = two_instances
    prompt = create_prompt(first)
    made = run(first, prompt["prompt_id"], "u").json()
    ids = ids + [ids[i % len(ids)] for i in repeats]  # duplicates inside the batch too
    events = [
        {
            "event_id": event_id,
            "type": "click",
            "label": "l",
            "prompt_run_id": made["run_id"],
            "experiment_id": made["experiment_id"],
            "timestamp": "2026-12-02T03:00:00.000Z",
        }
        for event_id in ids
    ]
    body = msgspec.json.encode({"sent_at": "2026-12-02T03:00:00.000Z", "events": events})
    stored_before = count(pg_url, "SELECT COUNT(*) FROM events")
    fresh = len(set(ids)) - count(pg_url, "SELECT COUNT(*) FROM events WHERE event_id = ANY(%s)", list(set(ids)))

    def send(url: str, key: str) -> httpx.Response:
        headers = {**HEADERS, "Idempotency-Key": key, "Content-Type": "application/json"}
        return httpx.post(f"{url}/v1/events/batch", content=body, headers=headers, timeout=60)

    # the same batch under two keys (two clients re-forming it), each key also retried on the other instance
    keys = [uuid.uuid4().hex, uuid.uuid4().hex]
    answers = at_once([lambda u=u, k=k: send(u, k) for k in keys for u in (first, second)])
    assert all(answer.status_code == 200 for answer in answers), [a.text for a in answers]
    results = [answer.json() for answer in answers]
    assert all(r["accepted"] + r["duplicates"] == len(ids) and r["rejected"] == [] for r in results)
    # the two answers under one key are the same answer; across keys, each event was accepted exactly once
    assert results[0] == results[1] and results[2] == results[3]
    assert results[0]["accepted"] + results[2]["accepted"] == fresh
    assert count(pg_url, "SELECT COUNT(*) FROM events") - stored_before == fresh


@shared_settings
@given(users=st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=12, unique=True))
def test_assignment_is_sticky_across_serve_processes(two_instances: tuple[str, str], users: list[str]) -> None:
    first, second = two_instances
    prompt = create_prompt(first, "one {{name}}")
    added = httpx.post(
        f"{first}/v1/prompts/{prompt['prompt_id']}/versions", json={"template": "two {{name}}"}, headers=HEADERS
    )
    assert added.status_code in (200, 201), added.text
    experiment = httpx.post(
        f"{second}/v1/experiments",
        json={"prompt_id": prompt["prompt_id"], "variants": [{"version": 1, "weight": 1}, {"version": 2, "weight": 1}]},
        headers=HEADERS,
    )
    assert experiment.status_code in (200, 201), experiment.text
    for user in users:
        calls = [lambda u=u, user=user: run(u, prompt["prompt_id"], user) for u in (first, second, second)]
        seen = {(a.json()["experiment_id"], a.json()["variant_assigned"]) for a in at_once(calls)}
        assert len(seen) == 1 and next(iter(seen))[0] == experiment.json()["experiment_id"]


def test_an_experiment_ended_on_one_serve_process_is_ended_on_the_other(two_instances: tuple[str, str]) -> None:
    first, second = two_instances
    prompt = create_prompt(first)
    experiment = httpx.post(
        f"{first}/v1/experiments",
        json={"prompt_id": prompt["prompt_id"], "variants": [{"version": 1, "weight": 1}]},
        headers=HEADERS,
    ).json()
    assert run(second, prompt["prompt_id"], "u").json()["experiment_id"] == experiment["experiment_id"]
    ended = httpx.post(f"{first}/v1/experiments/{experiment['experiment_id']}/end", headers=HEADERS)
    assert ended.status_code == 200 and ended.json()["active"] is False
    # every worker of the other instance sees it at once: no cache of the live experiment per process
    for _ in range(6):
        assert run(second, prompt["prompt_id"], "u").json()["experiment_id"] != experiment["experiment_id"]
        seen = httpx.get(f"{second}/v1/experiments/{experiment['experiment_id']}", headers=HEADERS).json()
        assert seen["active"] is False


@pytest.mark.parametrize("rate", [2.0, 5.0])
def test_a_rate_limit_holds_across_serve_processes_sharing_a_database(
    serve_processes: Callable[..., str], rate: float
) -> None:
    """R requests per second per key for the whole deployment, not per process: two instances (one with two
    workers) hammered at once let in at most the bucket plus R per second elapsed."""
    urls = [serve_processes("--rate-limit", str(rate)), serve_processes("--rate-limit", str(rate), "--workers", "2")]
    statuses: list[int] = []
    lock = threading.Lock()
    started = time.monotonic()
    stop_at = started + 2.0

    def hammer(url: str) -> None:
        with httpx.Client(headers=HEADERS, timeout=30) as http:
            while time.monotonic() < stop_at:
                status = http.get(f"{url}/v1/prompts").status_code
                with lock:
                    statuses.append(status)

    with ThreadPoolExecutor(4) as pool:
        for future in [pool.submit(hammer, url) for url in urls * 2]:
            future.result(timeout=60)
    elapsed = time.monotonic() - started
    accepted = statuses.count(200)
    assert set(statuses) <= {200, 429}
    assert statuses.count(429) > 0
    # a bucket of max(R, 1), refilled at R/s: per-process buckets would let in about twice (three times) as many
    assert 1 <= accepted <= max(rate, 1) + rate * elapsed + 1, (accepted, elapsed)


def test_one_idempotency_key_on_two_store_instances_at_once_makes_one_run(pg_url: str) -> None:
    """Two servers sharing one PostgreSQL database: the same Idempotency-Key sent to both at once runs the model once
    and both answer the same run (the claim row is in the database, not in either process)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from promptstream.server._pgstore import PgStore

    entered, gate = threading.Event(), threading.Event()
    calls: list[str] = []

    class Gated:
        def complete(self, template: str, inputs: dict[str, object]) -> str:
            calls.append(template)
            entered.set()
            assert gate.wait(30)
            return template

    first, second = PgStore(pg_url, provider=Gated()), PgStore(pg_url, provider=Gated())
    try:
        prompt = first.create_prompt("default", "p", "Hi {{name}}")
        key = ("runs", "same-key", "hash")

        def run(store: PgStore) -> tuple[int, bytes]:
            return store.create_run(
                "default", prompt["prompt_id"], {"name": "x"}, "u", idempotency=key, encode=msgspec.json.encode
            )

        with ThreadPoolExecutor(4) as pool:
            answers = [pool.submit(run, store) for store in (first, second, first, second)]
            assert entered.wait(30)
            gate.set()
            results = [answer.result(timeout=60) for answer in answers]
        assert {status for status, _ in results} == {200} and len({body for _, body in results}) == 1
        assert len(calls) == 1 and first.count("runs") == second.count("runs") == 1
    finally:
        gate.set()
        first.close()
        second.close()


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rate=st.floats(min_value=0.01, max_value=4.0))
def test_a_rate_limit_lets_in_its_bucket_then_answers_429_on_both_backends(
    server_factory: Callable[..., Any], rate: float
) -> None:
    """Any positive rate lets the first request in (a rate below 1/s once locked a key out for good), then at most
    the bucket (max(R, 1)) plus R per second elapsed; the rest get 429 with a Retry-After."""
    server = server_factory(rate_limit=rate)
    size = max(rate, 1.0)
    with httpx.Client(headers=HEADERS, timeout=30) as http:
        started = time.monotonic()
        answers = [http.get(f"{server.url}/v1/prompts") for _ in range(int(size) + 2)]
        elapsed = time.monotonic() - started
    assert answers[0].status_code == 200
    accepted = sum(answer.status_code == 200 for answer in answers)
    assert accepted <= size + rate * elapsed, (accepted, elapsed)
    limited = [answer for answer in answers if answer.status_code != 200]
    assert all(a.status_code == 429 and int(a.headers["retry-after"]) >= 1 for a in limited)
