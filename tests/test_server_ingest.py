"""Event ingestion answers exactly, on both backends (issue 17 §1): per batch, ``accepted`` counts the events stored
now and ``duplicates`` the ones stored before or repeated in the batch, and what is stored is what was sent (texts
with NUL or any other Unicode included) — whether PostgreSQL takes the batch by COPY or SQLite row by row."""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

import httpx
import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .helpers import API_KEY

HEADERS = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
texts = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=20)


def post_batch(url: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    body = msgspec.json.encode({"sent_at": "2026-12-02T03:00:00.000Z", "events": events})
    headers = {**HEADERS, "Idempotency-Key": uuid.uuid4().hex}
    response = httpx.post(f"{url}/v1/events/batch", content=body, headers=headers, timeout=60)
    assert response.status_code == 200, response.text
    return dict(response.json())


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    labels=st.lists(texts, min_size=1, max_size=60),
    stored_first=st.sets(st.integers(0, 59), max_size=20),
    repeated=st.lists(st.integers(0, 59), max_size=20),
)
def test_a_batch_answers_accepted_and_duplicates_exactly_and_stores_what_was_sent(
    server: Any, labels: list[str], stored_first: set[int], repeated: list[int]
) -> None:
    run = httpx.post(
        f"{server.url}/v1/prompts/{server.create_prompt()['prompt_id']}/runs",
        json={"inputs": {"name": "x"}},
        headers=HEADERS,
    ).json()

    def event(label: str) -> dict[str, Any]:
        return {
            "event_id": str(uuid.uuid4()),
            "type": "click",
            "label": label,
            "prompt_run_id": run["run_id"],
            "experiment_id": run["experiment_id"],
            "timestamp": "2026-12-02T03:00:00.000Z",
        }

    events = [event(label) for label in labels]
    earlier = [events[i] for i in sorted(stored_first) if i < len(events)]
    if earlier:
        assert post_batch(server.url, earlier)["accepted"] == len(earlier)
    batch = events + [events[i % len(events)] for i in repeated]  # repeats inside the batch
    answer = post_batch(server.url, batch)
    assert answer["rejected"] == []
    assert answer["accepted"] == len(events) - len(earlier)
    assert answer["duplicates"] == len(batch) - answer["accepted"]
    assert stored_labels(server, run["run_id"]) == {e["event_id"]: e["label"] for e in events}


def stored_labels(server: Any, run_id: str) -> dict[str, str]:
    """What the database holds, read as the store reads it (PostgreSQL texts pass through the store's NUL escape)."""
    query = "SELECT event_id, label FROM events WHERE prompt_run_id = ?"
    if hasattr(server.store, "url"):
        import psycopg

        from promptstream.server._pg import configure

        with psycopg.connect(server.store.url) as conn:
            configure(conn)
            return dict(conn.execute(query.replace("?", "%s").encode(), (run_id,)).fetchall())
    with contextlib.closing(server.database()) as db:
        return dict(db.execute(query, (run_id,)).fetchall())
