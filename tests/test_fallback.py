"""Offline fallback runs (issue 14 §1): with the server unreachable, ``run_prompt(..., fallback=...)`` returns a run
made by the client, the app keeps working, and the events tracked on it are accepted once the server is back —
stored as offline events and counted in no experiment's results (docs/protocol.md, "Offline fallback runs")."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptstream import (
    APIConnectionError,
    ArgumentTypeError,
    AsyncPromptStreamClient,
    AuthenticationError,
    PromptNotFoundError,
    PromptStreamClient,
)

from .helpers import API_KEY, wait_until

texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


def _conversions(server: Any, experiment_id: str) -> int:
    results = server.store.experiment_results("default", experiment_id)
    return sum(v["conversion"]["per_run"]["successes"] for v in results["variants"])


def test_offline_run_then_events_accepted_when_the_server_is_back(server: Any, spool_dir: Path) -> None:
    prompt = server.store.create_prompt("default", "offline", "Hello {{name}}")
    client = PromptStreamClient(API_KEY, base_url=server.url, spool_dir=spool_dir, flush_interval=0.05, max_retries=0)
    with client:
        online = client.run_prompt(prompt["prompt_id"], {"name": "Ada"}, fallback="unused")
        assert not online.is_fallback and online.output == "Hello Ada"
        server.thread.stop()
        with pytest.raises(APIConnectionError):  # without a fallback, offline is still an error
            client.run_prompt(prompt["prompt_id"], {"name": "Ada"})
        offline = client.run_prompt(prompt["prompt_id"], {"name": "Bo"}, fallback=lambda i: f"Hi {i['name']}")
        assert offline.is_fallback and offline.output == "Hi Bo" and offline.variant_assigned == "fallback"
        assert offline.experiment_id == "offline" and offline.run_id.startswith("offline:")
        assert offline.request_id is None and offline.run_id != online.run_id
        ids = [
            client.track_conversion(offline.run_id, offline.experiment_id),
            client.track_click(offline.run_id, offline.experiment_id, label="copy"),
            client.track_rating(offline.run_id, offline.experiment_id, rating=5.0),
        ]
        online_event = client.track_conversion(online.run_id, online.experiment_id)
        assert not client.flush(0.5)  # the server is down: spooled
        server.thread.start()
        assert client.flush(15)
    stored = set(server.store.event_ids())
    assert {*ids, online_event} <= stored
    assert server.store.count("events", "WHERE experiment_id = ?", ["offline"]) == 3
    assert server.store.count("runs") == 1  # the fallback never became a server run
    assert _conversions(server, prompt["experiment_id"]) == 1  # only the online conversion counts
    assert all(e["experiment_id"] != "offline" for e in server.store.list_experiments("default"))


def test_http_errors_never_fall_back(server: Any, spool_dir: Path) -> None:
    client = PromptStreamClient(API_KEY, base_url=server.url, spool_dir=spool_dir)
    with client, pytest.raises(PromptNotFoundError):
        client.run_prompt("no-such-prompt", {"name": "Ada"}, fallback="offline text")
    refused = PromptStreamClient("wrong-key", base_url=server.url, spool=False)
    with refused, pytest.raises(AuthenticationError):
        refused.run_prompt("p", {}, fallback="offline text")


@pytest.mark.parametrize("bad", [42, b"bytes", ["list"]])
def test_fallback_of_the_wrong_type_is_refused_before_any_io(bad: Any) -> None:
    client = PromptStreamClient(API_KEY, base_url="http://127.0.0.1:9", spool=False)
    with client, pytest.raises(ArgumentTypeError) as info:
        client.run_prompt("p", {}, fallback=bad)
    assert info.value.argument == "fallback"


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=texts, name=texts, as_callable=st.booleans())
def test_fallback_output_is_the_fallback_for_any_inputs(text: str, name: str, as_callable: bool) -> None:
    fallback: Any = (lambda inputs: text + inputs["name"]) if as_callable else text
    with PromptStreamClient(API_KEY, base_url="http://127.0.0.1:9", spool=False, max_retries=0) as client:
        run = client.run_prompt("p", {"name": name}, fallback=fallback)
    assert run.output == (text + name if as_callable else text)
    assert run.is_fallback and uuid.UUID(run.run_id.removeprefix("offline:"))


@pytest.mark.parametrize(
    ("run_id", "experiment_id"),
    [("offline:not-a-uuid", "offline"), (f"offline:{uuid.uuid4()}", "exp"), (str(uuid.uuid4()), "offline")],
)
def test_server_rejects_what_is_not_an_offline_run(server: Any, run_id: str, experiment_id: str) -> None:
    event = {
        "event_id": "0190a0b0-0000-7000-8000-000000000001",
        "type": "conversion",
        "prompt_run_id": run_id,
        "experiment_id": experiment_id,
        "timestamp": "2026-11-27T10:57:25.001Z",
    }
    answer = httpx.post(
        f"{server.url}/v1/events/batch",
        json={"events": [event], "sent_at": "2026-11-27T10:57:26.000Z"},
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 0 and len(answer.json()["rejected"]) == 1
    assert server.store.event_ids() == []


def test_async_client_falls_back_and_its_events_arrive(server: Any, spool_dir: Path) -> None:
    prompt = server.store.create_prompt("default", "offline-async", "Hello {{name}}")
    server.thread.stop()

    async def scenario() -> str:
        async with AsyncPromptStreamClient(
            API_KEY, base_url=server.url, spool_dir=spool_dir, flush_interval=0.05, max_retries=0
        ) as client:
            run = await client.run_prompt(prompt["prompt_id"], {"name": "Ada"}, fallback="Hello, whoever")
            assert run.is_fallback and run.output == "Hello, whoever"
            event_id = client.track_conversion(run.run_id, run.experiment_id)
            server.thread.start()
            assert await client.flush(15)
            return event_id

    event_id = asyncio.run(scenario())
    assert wait_until(lambda: event_id in server.store.event_ids())
    assert _conversions(server, prompt["experiment_id"]) == 0
